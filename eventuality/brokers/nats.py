"""Publishing a relay's messages to NATS JetStream with the official client, nats-py.

Each message carries ``Nats-Msg-Id`` = the event id, so a batch published again (after a crash,
a lost connection or a missed acknowledgement) inside the stream's duplicate window is stored
once: exactly once as the stream's consumers see it. Batches are pipelined (every message sent,
then every acknowledgement awaited) on one connection, which keeps the log's order in the
stream; on any failure the connection is dropped and the next batch opens a new one, so nothing
buffered for the old one is sent behind the retried batch.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import BrokerError, BrokerUnavailable
from ..relay import ClosingPublisher, OutboundMessage

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import PubAck, StorageType
except ImportError as exc:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        'eventuality.brokers.nats needs nats-py: pip install "eventuality[nats]"'
    ) from exc

__all__ = ["JetStreamPublisher"]

logger = logging.getLogger("eventuality")

_STREAM_NAME = re.compile(r"[^\s.*>/\\]+")
#: Failures after which publishing again later may work.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.TimeoutError,
    nats.errors.UnexpectedEOF,
    nats.js.errors.NoStreamResponseError,  # JetStream not (yet) answering: it is starting
    nats.js.errors.ServiceUnavailableError,
)


class JetStreamPublisher(ClosingPublisher):
    """Publishes to the JetStream stream ``stream``, creating it if it does not exist.

    :param servers: the NATS URL(s); the connection opens on the first batch and again after
        any failure. ``connect_options`` go to ``nats.connect`` (credentials, TLS, name).
    :param subjects: the subjects of a stream it creates (default ``events.>``, the relay's
        default prefix); an existing stream keeps its own, and a message whose subject it does
        not take is refused with :class:`~eventuality.BrokerError` before anything is sent.
    :param duplicate_window: seconds a created stream remembers message ids; a relay restarted
        within it publishes nothing twice. An existing stream keeps its own (NATS's default is
        two minutes); ``duplicate_window_in_use`` says which.
    :param ack_timeout: seconds to wait for a batch's acknowledgements.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str,
        subjects: Sequence[str] = ("events.>",),
        create_stream: bool = True,
        duplicate_window: float = 120.0,
        ack_timeout: float = 10.0,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(stream, str) or not _STREAM_NAME.fullmatch(stream):
            raise ValueError(
                f"a JetStream stream name must be non-empty, without spaces, '.', '*', '>', "
                f"'/' or '\\', not {stream!r}"
            )
        if isinstance(subjects, str) or not subjects:
            raise ValueError(f"subjects must be a non-empty list of subjects, not {subjects!r}")
        if not duplicate_window > 0:
            raise ValueError(f"duplicate_window must be positive seconds, not {duplicate_window}")
        if not ack_timeout > 0:
            raise ValueError(f"ack_timeout must be positive seconds, not {ack_timeout}")
        options = dict(connect_options or {})
        if "allow_reconnect" in options:
            raise ValueError(
                "JetStreamPublisher reconnects by itself (a fresh connection after a failure "
                "keeps the log's order); leave allow_reconnect out of connect_options"
            )
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.stream = stream
        self.subjects = list(subjects)
        self.create_stream = create_stream
        self.duplicate_window = duplicate_window
        self.ack_timeout = ack_timeout
        #: The stream's duplicate window in seconds, read when connected.
        self.duplicate_window_in_use: float | None = None
        self._options = options
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_subjects: list[str] = []
        self._subjects_ok: set[str] = set()
        self._lost: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"JetStreamPublisher(stream={self.stream!r})"

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> None:
        """Publish ``messages`` in order and wait until JetStream acknowledged each.

        :raises BrokerUnavailable: not every message was acknowledged; publish them again.
        :raises BrokerError: JetStream refused them (a subject the stream does not take).
        """
        if not messages:
            return
        try:
            js = await self._connect()
            self._check_subjects(messages)
            lost = self._lost
            assert lost is not None
            acks = [
                await js.publish_async(
                    m.subject,
                    m.body,
                    headers={**m.headers, "Nats-Msg-Id": m.message_id},
                    stream=self.stream,
                )
                for m in messages
            ]
            await self._confirmed(acks, lost)
        except BrokerError:
            raise
        except _TRANSIENT as exc:
            await self._drop()
            raise BrokerUnavailable(
                f"NATS at {self._where()} did not acknowledge {len(messages)} message(s) for "
                f"stream {self.stream!r}: {type(exc).__name__}: {exc}"
            ) from exc
        except nats.js.errors.APIError as exc:
            raise BrokerError(
                f"JetStream refused a message for stream {self.stream!r}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        """Close the connection (it opens again on the next batch)."""
        await self._drop()

    async def _confirmed(
        self, acks: list[asyncio.Future[PubAck]], lost: asyncio.Future[None]
    ) -> None:
        """Wait for every acknowledgement, failing at once when the connection is lost."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        left = len(acks)

        def count(ack: asyncio.Future[PubAck]) -> None:
            nonlocal left
            if done.done():
                return
            error = None if ack.cancelled() else ack.exception()
            if error is not None:
                done.set_exception(error)
                return
            left -= 1
            if left == 0:
                done.set_result(None)

        def gone(_: asyncio.Future[None]) -> None:
            if not done.done():
                done.set_exception(nats.errors.ConnectionClosedError())

        for ack in acks:
            ack.add_done_callback(count)
        lost.add_done_callback(gone)
        try:
            await asyncio.wait_for(done, self.ack_timeout)
        finally:
            lost.remove_done_callback(gone)
            for ack in acks:
                if not ack.done():
                    ack.cancel()  # frees its place in the client's pending count

    async def _connect(self) -> JetStreamContext:
        if self._js is not None and self._nc is not None and not self._nc.is_closed:
            return self._js
        await self._drop()
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        async def disconnected() -> None:
            if not lost.done():
                lost.set_result(None)

        async def error(exc: Exception) -> None:
            logger.debug("NATS client error (%s): %r", self._where(), exc)

        # One try per server, then the relay's own back-off: nats-py would otherwise retry an
        # unreachable server for minutes inside connect().
        options = {"max_reconnect_attempts": 1, "reconnect_time_wait": 0.1, "connect_timeout": 5}
        options.update(self._options)
        nc = await nats.connect(
            self.servers,
            allow_reconnect=False,
            disconnected_cb=disconnected,
            closed_cb=disconnected,
            error_cb=error,
            **options,
        )
        try:
            js = nc.jetstream()
            await self._stream(js)
        except BaseException:
            await nc.close()
            raise
        self._nc, self._js, self._lost = nc, js, lost
        return js

    async def _stream(self, js: JetStreamContext) -> None:
        """Find the stream (or create it) and remember its subjects and duplicate window."""
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            if not self.create_stream:
                raise BrokerError(
                    f"JetStream has no stream {self.stream!r}: create it (with subjects that "
                    "take the relay's) or pass create_stream=True"
                ) from None
            info = await js.add_stream(
                name=self.stream,
                subjects=self.subjects,
                duplicate_window=self.duplicate_window,
                storage=StorageType.FILE,
            )
        self._stream_subjects = list(info.config.subjects or [])
        self.duplicate_window_in_use = info.config.duplicate_window
        self._subjects_ok.clear()

    def _check_subjects(self, messages: Sequence[OutboundMessage]) -> None:
        for message in messages:
            subject = message.subject
            if subject in self._subjects_ok:
                continue
            if not any(_matches(f, subject) for f in self._stream_subjects):
                raise BrokerError(
                    f"stream {self.stream!r} does not take subject {subject!r} (its subjects: "
                    f"{self._stream_subjects}); nothing was published. Add the subject to the "
                    "stream or change the relay's prefix or subject function."
                )
            self._subjects_ok.add(subject)

    async def _drop(self) -> None:
        nc, self._nc, self._js, self._lost = self._nc, None, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception as exc:  # closing a broken connection: nothing more to do
                logger.debug("closing the NATS connection failed: %r", exc)

    def _where(self) -> str:
        return ", ".join(_without_password(s) for s in self.servers)


def _matches(pattern: str, subject: str) -> bool:
    """Whether NATS subject filter ``pattern`` (with ``*`` and ``>``) takes ``subject``."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or (token != "*" and token != tokens[i]):
            return False
    return len(tokens) == len(wanted)


def _without_password(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
