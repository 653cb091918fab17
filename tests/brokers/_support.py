"""What the broker tests share: an event to relay, a filled store, a stream's contents, and a
TCP proxy that plays a broker closing its connections or going away."""

import asyncio
from dataclasses import dataclass, field

import anyio

from eventuality import Event, EventStore


class Ticked(Event):
    """An event with a dotted type name: its default subject must escape the dot."""

    __event_type__ = "relay.ticked"
    n: int
    note: str = ""


async def fill(store: EventStore, count: int, *, first: int = 0, chunk: int = 500) -> None:
    """Append ``count`` Ticked events over seven streams, ``chunk`` per append."""
    for start in range(first, first + count, chunk):
        ends = min(start + chunk, first + count)
        for stream in range(7):
            events = [Ticked(n=n) for n in range(start, ends) if n % 7 == stream]
            if events:
                await store.append(f"Clock-{stream}", events)


async def feed(store: EventStore, stop: anyio.Event, *, chunk: int = 20) -> None:
    """Append ``chunk`` events at a time, a few milliseconds apart, until ``stop`` is set."""
    first = await store.last_position()
    while not stop.is_set():
        await fill(store, chunk, first=first, chunk=chunk)
        first += chunk
        await anyio.sleep(0.003)


async def log_ids(store: EventStore) -> list[str]:
    """The event ids of the whole log, in log order."""
    return [str(event.event_id) async for event in store.read_all()]


@dataclass
class StreamMessage:
    sequence: int
    subject: str
    headers: dict[str, str]
    data: bytes


async def jetstream_messages(url: str, stream: str) -> list[StreamMessage]:
    """Every message JetStream stream ``stream`` (subjects ``f"{stream}.>"``) holds, in order."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        subscription = await js.pull_subscribe(
            f"{stream}.>", stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
        )
        messages: list[StreamMessage] = []
        while len(messages) < total:
            for msg in await subscription.fetch(min(1000, total - len(messages)), timeout=5):
                messages.append(
                    StreamMessage(
                        msg.metadata.sequence.stream, msg.subject, dict(msg.headers or {}), msg.data
                    )
                )
        await subscription.unsubscribe()
        return messages
    finally:
        await nc.close()


@dataclass
class Proxy:
    """A TCP proxy to ``host:port``: :meth:`cut` closes every connection (the broker closing
    them), :meth:`stop` also stops listening (the broker gone), :meth:`start` listens again on
    the same port."""

    host: str
    port: int
    listen_port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    cuts: int = 0
    connections: int = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.listen_port)
        self.listen_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.cut()

    def cut(self) -> None:
        self.cuts += 1
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
