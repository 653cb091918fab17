"""An in-memory CommandSource for the consumer's tests: a broker queue with redelivery."""

from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from eventuality import Command
from eventuality.inbound import encode_command


@dataclass
class Message:
    message_id: str | None
    command_type: str | None
    body: bytes
    deliveries: int = 0


@dataclass
class MemorySource:
    """Messages wait in ``queue``; a delivery is settled once. ``acked``, ``dead`` (message,
    reason), ``retried`` and ``released`` record what the consumer did; unsettled ones go back
    to the queue at ``close``, as a broker redelivers them."""

    keep_alive: float | None = None
    queue: list[Message] = field(default_factory=list)
    acked: list[Message] = field(default_factory=list)
    dead: list[tuple[Message, str]] = field(default_factory=list)
    retried: list[Message] = field(default_factory=list)
    released: list[Message] = field(default_factory=list)
    on_ack: list[object] = field(default_factory=list)
    max_in_flight: int | None = None
    _unsettled: list["MemoryDelivery"] = field(default_factory=list)
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    def send(self, command: Command, message_id: str | None = None) -> Message:
        name, body = encode_command(command)
        return self.put(Message(message_id or str(command.command_id), name, body))

    def put(self, message: Message) -> Message:
        self.queue.append(message)
        self._arrived.set()
        return message

    async def open(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight

    async def receive(self, limit: int) -> Sequence["MemoryDelivery"]:
        if not self.queue:
            self._arrived = anyio.Event()
            with anyio.move_on_after(0.05):
                await self._arrived.wait()
            if not self.queue:
                return []
        taken, self.queue = self.queue[:limit], self.queue[limit:]
        deliveries = [MemoryDelivery(self, message) for message in taken]
        for delivery in deliveries:
            delivery.message.deliveries += 1
        self._unsettled.extend(deliveries)
        return deliveries

    async def close(self) -> None:
        for delivery in self._unsettled:
            self.put(delivery.message)
        self._unsettled.clear()

    def settle(self, delivery: "MemoryDelivery") -> None:
        assert delivery in self._unsettled, "settled twice"
        self._unsettled.remove(delivery)


@dataclass
class MemoryDelivery:
    source: MemorySource
    message: Message

    @property
    def message_id(self) -> str | None:
        return self.message.message_id

    @property
    def command_type(self) -> str | None:
        return self.message.command_type

    @property
    def body(self) -> bytes:
        return self.message.body

    async def ack(self) -> None:
        for hook in self.source.on_ack:
            await hook(self.message)  # type: ignore[operator]
        self.source.settle(self)
        self.source.acked.append(self.message)

    async def retry(self) -> None:
        self.source.settle(self)
        self.source.retried.append(self.message)
        self.source.put(self.message)

    async def release(self) -> None:
        self.source.settle(self)
        self.source.released.append(self.message)
        self.source.put(self.message)

    async def dead_letter(self, reason: str) -> None:
        self.source.settle(self)
        self.source.dead.append((self.message, reason))

    async def in_progress(self) -> None:
        pass
