"""The inbound message format and the boundary a broker implements for CommandConsumer.

A :class:`CommandSource` is what ``eventuality.brokers`` provides per broker: it opens, hands
over messages as :class:`CommandDelivery` objects and closes. The format is the same on every
broker (see :mod:`eventuality.inbound`): the command's JSON as the body, its type in the
``eventuality-command`` header, the broker's message id as the idempotency key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from .errors import InvalidCommandMessage
from .messages import Command

__all__ = [
    "COMMAND_HEADER",
    "REASON_HEADER",
    "CommandDelivery",
    "CommandSource",
    "InvalidCommandMessage",
    "command_table",
    "decode_command",
    "encode_command",
]

#: The header naming a message's command type.
COMMAND_HEADER = "eventuality-command"
#: The header a dead-lettered message carries: why it was refused.
REASON_HEADER = "eventuality-dead-letter-reason"
_ENVELOPE = {"command_id", "metadata"}


@runtime_checkable
class CommandDelivery(Protocol):
    """One message a source handed over, until it is settled by exactly one of the methods."""

    @property
    def message_id(self) -> str | None: ...
    @property
    def command_type(self) -> str | None: ...
    @property
    def body(self) -> bytes: ...

    async def ack(self) -> None:
        """Done with: the broker forgets the message."""

    async def retry(self) -> None:
        """Not done: the broker delivers it again (to this consumer or another)."""

    async def release(self) -> None:
        """Not handled (shutting down): back to the broker at once, no failure counted."""

    async def dead_letter(self, reason: str) -> None:
        """Never to be retried: to the dead-letter destination with ``reason``, then settled."""

    async def in_progress(self) -> None:
        """Still being handled: extend the broker's lease (a no-op where there is none)."""


@runtime_checkable
class CommandSource(Protocol):
    """Where a :class:`CommandConsumer`'s messages come from: a broker's queue or consumer.

    ``keep_alive`` is how often (seconds) a delivery being handled calls ``in_progress``, or
    None for brokers whose leases do not run out (RabbitMQ's last as long as the channel).
    """

    keep_alive: float | None

    async def open(self, max_in_flight: int) -> None:
        """Connect; never hold more than ``max_in_flight`` unsettled messages."""

    async def receive(self, limit: int) -> Sequence[CommandDelivery]:
        """Wait for messages and return 1 to ``limit`` of them, or an empty list after a short
        while (about a second) with none: :meth:`CommandConsumer.stop` waits for a receive
        to end rather than cut it short, since a broker may go on delivering to one (a
        JetStream pull request lives until it expires). Cancelling it must lose nothing: what
        it took is redelivered once its lease runs out."""

    async def close(self) -> None:
        """Disconnect; the broker redelivers every message left unsettled."""


def encode_command(command: Command, *, type_name: str | None = None) -> tuple[str, bytes]:
    """The command type header and the body that carry ``command`` to a consumer: its own
    fields as JSON, without the envelope (a consumer sets its own)."""
    if not isinstance(command, Command):
        raise TypeError(f"encode_command takes a Command instance, not {type(command).__name__}")
    body = type(command).__pydantic_serializer__.to_json(command, exclude=_ENVELOPE)
    return type_name or type(command).__name__, body


class _Invalid(Exception):
    """A message no retry can make into a command."""


def decode_command(
    delivery: CommandDelivery,
    commands: Mapping[str, type[Command]],
    context: dict[str, Any] | None = None,
) -> Command:
    """The command ``delivery`` carries, validated.

    :raises InvalidCommandMessage: no message id, no or an unknown type, bad JSON, invalid.
    """
    found = {"message_id": delivery.message_id, "command_type": delivery.command_type}
    if not delivery.message_id:
        raise InvalidCommandMessage(
            "the message has no message id (Nats-Msg-Id header, AMQP message_id): it is "
            "the idempotency key, without which a redelivery could commit twice",
            **found,
        )
    name = delivery.command_type
    if not name:
        raise InvalidCommandMessage(
            f"the message has no {COMMAND_HEADER} header naming its command type", **found
        )
    command_class = commands.get(name)
    if command_class is None:
        raise InvalidCommandMessage(
            f"unknown command type {name!r}: this consumer takes {sorted(commands)}", **found
        )
    try:
        return command_class.model_validate_json(delivery.body, context=context)
    except ValidationError as exc:
        raise InvalidCommandMessage(f"{name} is invalid: {exc}", **found) from None


def command_table(
    commands: Iterable[type[Command]] | Mapping[str, type[Command]],
) -> dict[str, type[Command]]:
    """``commands`` as a table from type name to class (a list: each under its name)."""
    if isinstance(commands, Mapping):
        pairs = list(commands.items())
    elif isinstance(commands, str | bytes):
        raise TypeError("commands takes Command classes or a mapping, not a string")
    else:
        pairs = [(getattr(c, "__name__", repr(c)), c) for c in commands]
    table: dict[str, type[Command]] = {}
    for name, command_class in pairs:
        if not (isinstance(command_class, type) and issubclass(command_class, Command)):
            raise TypeError(f"commands takes Command subclasses, not {command_class!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"command type names are non-empty strings, not {name!r}")
        if name in table and table[name] is not command_class:
            raise ValueError(
                f"two command classes under the name {name!r}: {table[name]!r} and "
                f"{command_class!r}; pass a mapping to name them apart"
            )
        table[name] = command_class
    if not table:
        raise ValueError("commands is empty: name the Command classes this consumer takes")
    return table
