"""Commands in from NATS JetStream: a durable pull consumer as a :class:`CommandSource`.

``JetStreamCommandSource`` reads a stream through a durable pull consumer with explicit
acknowledgements; ``max_ack_pending`` is at least the :class:`CommandConsumer`'s
``max_in_flight``, and a message being handled renews its lease (``in_progress``) every third of
``ack_wait``. A message handed back is ``nak``-ed (redelivered at once; the consumer has already
backed off). A dead-lettered message is published, with JetStream's acknowledgement, to the
dead-letter subject with the reason in the ``eventuality-dead-letter-reason`` header, then
``term``-inated so it is never redelivered. Its ``Nats-Msg-Id`` travels along, so a copy
dead-lettered twice (a crash between the publish and the ``term``) is stored once inside the
dead-letter stream's duplicate window.

:func:`send_command` publishes a command in the format the consumer reads, from any service.
Needs ``pip install "eventuality[nats]"`` (nats-py) and asyncio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from .._inbound_format import COMMAND_HEADER, REASON_HEADER, encode_command
from ..messages import Command

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import AckPolicy, ConsumerConfig, PubAck, StreamConfig
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f'eventuality.brokers.nats_inbound needs nats-py ({exc}): pip install "eventuality[nats]"'
    ) from exc

__all__ = ["JetStreamCommandSource", "JetStreamDelivery", "send_command"]

#: The header carrying the NATS subject a dead-lettered message was read from.
SUBJECT_HEADER = "eventuality-subject"
MSG_ID = "Nats-Msg-Id"
logger = logging.getLogger("eventuality")


def _header_value(text: str) -> str:
    """NATS headers are lines: a reason spanning lines (pydantic's) becomes one line."""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


class JetStreamDelivery:
    """One JetStream message, settled through its ack subject."""

    __slots__ = ("_msg", "_source")

    def __init__(self, source: JetStreamCommandSource, msg: Msg) -> None:
        self._source = source
        self._msg = msg

    @property
    def message_id(self) -> str | None:
        return (self._msg.headers or {}).get(MSG_ID)

    @property
    def command_type(self) -> str | None:
        return (self._msg.headers or {}).get(COMMAND_HEADER)

    @property
    def body(self) -> bytes:
        return self._msg.data

    @property
    def deliveries(self) -> int:
        """How often JetStream has delivered this message (1: the first time)."""
        return self._msg.metadata.num_delivered

    async def ack(self) -> None:
        await self._msg.ack_sync(timeout=self._source.request_timeout)

    async def retry(self) -> None:
        await self._msg.nak()

    async def release(self) -> None:
        await self._msg.nak()

    async def dead_letter(self, reason: str) -> None:
        headers = dict(self._msg.headers or {})
        headers[REASON_HEADER] = _header_value(reason)
        headers[SUBJECT_HEADER] = self._msg.subject
        await self._source.js.publish(
            self._source.dead_letter_subject,
            self._msg.data,
            headers=headers,
            timeout=self._source.request_timeout,
        )
        await self._msg.term()

    async def in_progress(self) -> None:
        await self._msg.in_progress()


class JetStreamCommandSource:
    """Commands from the JetStream stream ``stream``, subjects ``subject`` (wildcards allowed),
    through the durable pull consumer ``durable`` (made if missing; instances of one service
    share it, each message going to one of them).

    ``connection`` is a server URL (the source connects and disconnects) or a connected
    ``nats.aio.client.Client`` (left open). With ``create_stream`` a missing stream is made
    (file storage, ``subjects=[subject]``). ``dead_letter_subject`` (default
    ``f"{durable}.dlq"``) must not be read by this stream; when no stream captures it, one
    named ``f"{stream}_DLQ"`` is made, so dead letters are kept.
    """

    def __init__(
        self,
        connection: str | Client = "nats://127.0.0.1:4222",
        *,
        stream: str,
        subject: str,
        durable: str,
        dead_letter_subject: str | None = None,
        ack_wait: float = 30.0,
        fetch_timeout: float = 1.0,
        request_timeout: float = 5.0,
        create_stream: bool = True,
    ) -> None:
        for name, value in (("stream", stream), ("subject", subject), ("durable", durable)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, not {value!r}")
        if ack_wait <= 0 or fetch_timeout <= 0 or request_timeout <= 0:
            raise ValueError("ack_wait, fetch_timeout and request_timeout must be > 0 seconds")
        self.connection = connection
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.dead_letter_subject = dead_letter_subject or f"{durable}.dlq"
        self.ack_wait = float(ack_wait)
        self.keep_alive: float | None = self.ack_wait / 3
        self.fetch_timeout = float(fetch_timeout)
        self.request_timeout = float(request_timeout)
        self.create_stream = create_stream
        self._nc: Client | None = None
        self._owned = False
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._orphaned_until = 0.0

    def __repr__(self) -> str:
        return f"JetStreamCommandSource(stream={self.stream!r}, durable={self.durable!r})"

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError(f"{self!r} is not open")
        return self._js

    async def open(self, max_in_flight: int) -> None:
        if isinstance(self.connection, str):
            self._nc = await nats.connect(self.connection)
            self._owned = True
        else:
            self._nc, self._owned = self.connection, False
        try:
            self._js = self._nc.jetstream(timeout=self.request_timeout)
            await self._ensure_streams()
            config = await self._consumer_config(max_in_flight)
            self._sub = await self._js.pull_subscribe(
                self.subject, durable=self.durable, stream=self.stream, config=config
            )
        except BaseException:
            await self.close()
            raise

    async def _ensure_streams(self) -> None:
        js = self.js
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            if not self.create_stream:
                raise
            await js.add_stream(StreamConfig(name=self.stream, subjects=[self.subject]))
        try:
            holder = await js.find_stream_name_by_subject(self.dead_letter_subject)
        except nats.js.errors.NotFoundError:
            dlq = f"{self.stream}_DLQ"
            await js.add_stream(StreamConfig(name=dlq, subjects=[self.dead_letter_subject]))
            logger.info("made JetStream stream %r for dead letters", dlq)
        else:
            if holder == self.stream:
                raise ValueError(
                    f"dead_letter_subject {self.dead_letter_subject!r} is a subject of the "
                    f"command stream {self.stream!r}: dead letters would come back as commands. "
                    "Pick a subject outside it."
                )

    async def _consumer_config(self, max_in_flight: int) -> ConsumerConfig | None:
        """The new consumer's config; None when it exists (after checking it fits)."""
        try:
            info = await self.js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            return ConsumerConfig(
                durable_name=self.durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait,
                max_ack_pending=max_in_flight,
                max_deliver=-1,
            )
        config = info.config
        pending = config.max_ack_pending
        if config.ack_policy != AckPolicy.EXPLICIT:
            raise ValueError(
                f"JetStream consumer {self.durable!r} on {self.stream!r} acknowledges "
                f"{config.ack_policy}; commands need explicit acknowledgements (ack only after "
                "the commit). Delete it, or use another durable name."
            )
        if pending is not None and 0 < pending < max_in_flight:
            raise ValueError(
                f"JetStream consumer {self.durable!r} allows {pending} unacknowledged messages "
                f"(max_ack_pending), fewer than max_in_flight={max_in_flight}: raise it "
                "(nats consumer edit) or lower max_in_flight."
            )
        return None

    async def receive(self, limit: int) -> Sequence[JetStreamDelivery]:
        if self._sub is None:
            raise RuntimeError(f"{self!r} is not open")
        started = asyncio.get_running_loop().time()
        try:
            msgs = await self._sub.fetch(limit, timeout=self.fetch_timeout)
        except asyncio.CancelledError:
            # The pull request lives on at the server until it expires: close() waits for
            # that, then hands back what it delivered.
            self._orphaned_until = started + self.fetch_timeout
            raise
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except (nats.errors.ConnectionReconnectingError, nats.errors.StaleConnectionError):
            await asyncio.sleep(self.fetch_timeout)  # the client reconnects meanwhile
            return []
        return [JetStreamDelivery(self, msg) for msg in msgs]

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        nc, self._nc = self._nc, None
        self._js = None
        if nc is None:
            return
        try:
            if sub is not None and not nc.is_closed:
                await self._hand_back_orphans(sub)
                await sub.unsubscribe()
        except Exception as exc:  # closing regardless; the server ends the pull request
            logger.debug("unsubscribing from %r failed: %s", self.durable, exc)
        if self._owned and not nc.is_closed:
            await nc.close()

    async def _hand_back_orphans(self, sub: JetStreamContext.PullSubscription) -> None:
        """After a cancelled fetch, wait until its pull request expired and ``nak`` what it
        delivered meanwhile (messages handed back included), so they are redelivered now, not
        after ``ack_wait``. Reads nats-py's pending queue: it has no public way to."""
        wait = self._orphaned_until - asyncio.get_running_loop().time()
        if wait <= -self.fetch_timeout:
            return
        await asyncio.sleep(max(wait, 0) + 0.05)
        queue = getattr(getattr(sub, "_sub", None), "_pending_queue", None)
        while isinstance(queue, asyncio.Queue) and not queue.empty():
            msg = queue.get_nowait()
            if isinstance(msg, Msg) and msg.reply and not (msg.headers or {}).get("Status"):
                await msg.nak()


async def send_command(
    connection: Client | JetStreamContext,
    subject: str,
    command: Command,
    *,
    message_id: str | None = None,
    type_name: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> PubAck:
    """Publish ``command`` on ``subject`` in the format :class:`CommandConsumer` reads, and
    wait for JetStream's acknowledgement.

    ``message_id`` (default: the command's id) is the ``Nats-Msg-Id``: JetStream drops a
    repeat inside the stream's duplicate window, and the consumer's flow dispatches it once
    whatever the window. Send a retry with the same id.
    """
    name, body = encode_command(command, type_name=type_name)
    js = connection.jetstream() if isinstance(connection, Client) else connection
    sent: dict[str, Any] = dict(headers or {})
    sent[COMMAND_HEADER] = name
    sent[MSG_ID] = message_id or str(command.command_id)
    return await js.publish(subject, body, headers=sent, timeout=timeout)
