"""An order/stock process manager: a placed order reserves stock; when stock is short, the
order is cancelled. Two reactions follow the log; each commits its events with its checkpoint,
so however often this is stopped and run again, every order is answered exactly once.

    python examples/order_stock.py [orders.db]
"""

from __future__ import annotations

import sys

import anyio

from eventuality import (
    Aggregate,
    Command,
    Event,
    Flow,
    Reaction,
    Repository,
    SQLiteEventStore,
)


class OrderPlaced(Event):
    sku: str
    quantity: int


class OrderCancelled(Event):
    reason: str


class OrderConfirmed(Event):
    pass


class StockAdded(Event):
    quantity: int


class StockReserved(Event):
    order_id: str
    quantity: int


class StockShort(Event):
    order_id: str
    wanted: int
    available: int


class Order(Aggregate):
    status: str = "new"

    @classmethod
    def create(cls, id: str, sku: str, quantity: int) -> Order:
        order = cls(id=id)
        order.record(OrderPlaced(sku=sku, quantity=quantity))
        return order

    def apply(self, event: Event) -> None:
        match event:
            case OrderPlaced():
                self.status = "placed"
            case OrderConfirmed():
                self.status = "confirmed"
            case OrderCancelled():
                self.status = "cancelled"


class Stock(Aggregate):
    available: int = 0

    @classmethod
    def create(cls, id: str, quantity: int) -> Stock:
        stock = cls(id=id)
        stock.record(StockAdded(quantity=quantity))
        return stock

    def reserve(self, order_id: str, quantity: int) -> None:
        if quantity > self.available:
            self.record(StockShort(order_id=order_id, wanted=quantity, available=self.available))
        else:
            self.record(StockReserved(order_id=order_id, quantity=quantity))

    def apply(self, event: Event) -> None:
        match event:
            case StockAdded(quantity=quantity):
                self.available += quantity
            case StockReserved(quantity=quantity):
                self.available -= quantity


class PlaceOrder(Command):
    id: str
    sku: str
    quantity: int


class ReserveStock(Command):
    sku: str
    order_id: str
    quantity: int


class ConfirmOrder(Command):
    id: str


class CancelOrder(Command):
    id: str
    reason: str


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store:
        orders, stock = Repository(Order, store), Repository(Stock, store)
        flow = Flow(store=store)

        @flow.handles(PlaceOrder)
        async def place(cmd: PlaceOrder) -> None:
            await orders.add(id=cmd.id, sku=cmd.sku, quantity=cmd.quantity)

        @flow.handles(ReserveStock)
        async def reserve(cmd: ReserveStock) -> None:
            (await stock.load(cmd.sku)).reserve(cmd.order_id, cmd.quantity)

        @flow.handles(ConfirmOrder)
        async def confirm(cmd: ConfirmOrder) -> None:
            (await orders.load(cmd.id)).record(OrderConfirmed())

        @flow.handles(CancelOrder)
        async def cancel(cmd: CancelOrder) -> None:
            (await orders.load(cmd.id)).record(OrderCancelled(reason=cmd.reason))

        async def reserve_stock(event: OrderPlaced) -> None:
            order_id = event.aggregate_id or ""
            await flow.dispatch(
                ReserveStock(sku=event.sku, order_id=order_id, quantity=event.quantity)
            )

        async def settle_order(event: Event) -> None:
            match event:
                case StockReserved(order_id=order_id):
                    await flow.dispatch(ConfirmOrder(id=order_id))
                case StockShort(order_id=order_id, wanted=wanted, available=available):
                    reason = f"wanted {wanted}, {available} in stock"
                    await flow.dispatch(CancelOrder(id=order_id, reason=reason))

        reactions = [
            Reaction(store, "reserve-stock", reserve_stock, flow=flow, event_types=[OrderPlaced]),
            Reaction(
                store,
                "settle-orders",
                settle_order,
                flow=flow,
                event_types=[StockReserved, StockShort],
            ),
        ]

        run = await store.stream_version("Stock-apples")
        if run == 0:
            await stock.add(id="apples", quantity=10)
        batch = await store.last_position()
        for n, quantity in enumerate((4, 5, 3)):
            await flow.dispatch(PlaceOrder(id=f"o{batch}-{n}", sku="apples", quantity=quantity))

        for reaction in reactions:  # each answers every event once, whatever ran before
            await reaction.catch_up()

        async for event in store.read_all(event_types=[OrderConfirmed, OrderCancelled]):
            if event.position and event.position > batch:
                chain = event.metadata["correlation_id"][-8:]
                detail = f" ({event.reason})" if isinstance(event, OrderCancelled) else ""
                print(f"{event.aggregate_id}: {event.event_type}{detail} [correlation ..{chain}]")
        left = (await stock.load("apples")).available
        print(f"apples in stock: {left}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "orders.db")
