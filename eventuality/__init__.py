"""eventuality: asyncio-native event sourcing and CQRS.

Aggregates decide and record events; repositories load and save them with optimistic
concurrency; event stores keep streams and one ordered global log; the EventBus fans committed
events out in process; Flow.dispatch runs a command's whole cycle.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .aggregate import Aggregate as Aggregate
from .aggregate import Uncommitted as Uncommitted
from .bus import BusStatistics as BusStatistics
from .bus import EventBus as EventBus
from .errors import AggregateExists as AggregateExists
from .errors import AggregateNotFound as AggregateNotFound
from .errors import BrokerError as BrokerError
from .errors import BrokerUnavailable as BrokerUnavailable
from .errors import CheckpointConflict as CheckpointConflict
from .errors import ConcurrencyError as ConcurrencyError
from .errors import DuplicateEventError as DuplicateEventError
from .errors import EventSchemaError as EventSchemaError
from .errors import EventualityError as EventualityError
from .errors import IdempotencyKeyReused as IdempotencyKeyReused
from .errors import InvalidCommandMessage as InvalidCommandMessage
from .errors import InvalidStoreURL as InvalidStoreURL
from .errors import PartitionsChanged as PartitionsChanged
from .errors import ProjectionRetired as ProjectionRetired
from .errors import ProjectionVersionError as ProjectionVersionError
from .errors import SchemaVersionError as SchemaVersionError
from .errors import StoreBusyError as StoreBusyError
from .errors import StoreClosedError as StoreClosedError
from .errors import StoreConnectionError as StoreConnectionError
from .errors import StoreError as StoreError
from .errors import StoreUsageError as StoreUsageError
from .errors import StreamArchived as StreamArchived
from .errors import StreamDeleted as StreamDeleted
from .errors import StreamLifecycleError as StreamLifecycleError
from .errors import StreamNotFound as StreamNotFound
from .errors import StreamTruncated as StreamTruncated
from .errors import SubscriptionLocked as SubscriptionLocked
from .errors import SubscriptionTimeout as SubscriptionTimeout
from .errors import TransactionError as TransactionError
from .errors import TransientStoreError as TransientStoreError
from .errors import UncommittedEventsError as UncommittedEventsError
from .errors import UnknownCommand as UnknownCommand
from .errors import UnknownEventType as UnknownEventType
from .errors import UnknownSubscription as UnknownSubscription
from .errors import UnsupportedEventLoop as UnsupportedEventLoop
from .errors import UnsupportedOperation as UnsupportedOperation
from .flow import Flow as Flow
from .idempotency import KeepCommands as KeepCommands
from .inbound import CommandConsumer as CommandConsumer
from .inbound import CommandDelivery as CommandDelivery
from .inbound import CommandSource as CommandSource
from .inbound import ConsumerStatistics as ConsumerStatistics
from .messages import TRUSTED_ENVELOPE as TRUSTED_ENVELOPE
from .messages import Command as Command
from .messages import Event as Event
from .messages import event_class as event_class
from .messages import register_upcaster as register_upcaster
from .messages import upcaster as upcaster
from .personal import PersonalData as PersonalData
from .projections import Projection as Projection
from .reactions import Reaction as Reaction
from .relay import OutboundMessage as OutboundMessage
from .relay import Publisher as Publisher
from .relay import Relay as Relay
from .relay import RelayStatistics as RelayStatistics
from .relay import subject_token as subject_token
from .repository import Repository as Repository
from .stores import EventStore as EventStore
from .stores import InMemoryEventStore as InMemoryEventStore
from .stores import SQLiteEventStore as SQLiteEventStore
from .stores import StreamAppend as StreamAppend
from .stores import open_store as open_store
from .stores._partition_hash import partition_of as partition_of
from .stores.base import Transaction as Transaction
from .stores.boundary import Capabilities as Capabilities
from .stores.lifecycle import StreamArchival as StreamArchival
from .stores.lifecycle import StreamRestoration as StreamRestoration
from .stores.lifecycle import Tombstone as Tombstone
from .stores.records import EventRecord as EventRecord
from .stores.rows import CheckpointMove as CheckpointMove
from .subscriptions import Subscription as Subscription
from .subscriptions import SubscriptionRunner as SubscriptionRunner
from .subscriptions import SubscriptionStatistics as SubscriptionStatistics
from .subscriptions import wait_for_subscriptions as wait_for_subscriptions

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "AggregateExists",
    "AggregateNotFound",
    "BrokerError",
    "BrokerUnavailable",
    "BusStatistics",
    "Capabilities",
    "CheckpointConflict",
    "CheckpointMove",
    "Command",
    "CommandConsumer",
    "CommandDelivery",
    "CommandSource",
    "ConcurrencyError",
    "ConsumerStatistics",
    "DuplicateEventError",
    "Event",
    "EventBus",
    "EventRecord",
    "EventSchemaError",
    "EventStore",
    "EventualityError",
    "Flow",
    "IdempotencyKeyReused",
    "InMemoryEventStore",
    "InvalidCommandMessage",
    "InvalidStoreURL",
    "KeepCommands",
    "OutboundMessage",
    "PartitionsChanged",
    "PersonalData",
    "PostgresEventStore",
    "Projection",
    "ProjectionRetired",
    "ProjectionVersionError",
    "Publisher",
    "Reaction",
    "Relay",
    "RelayStatistics",
    "Repository",
    "SQLiteEventStore",
    "SchemaVersionError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreConnectionError",
    "StoreError",
    "StoreUsageError",
    "StreamAppend",
    "StreamArchival",
    "StreamArchived",
    "StreamDeleted",
    "StreamLifecycleError",
    "StreamNotFound",
    "StreamRestoration",
    "StreamTruncated",
    "Subscription",
    "SubscriptionLocked",
    "SubscriptionRunner",
    "SubscriptionStatistics",
    "SubscriptionTimeout",
    "TRUSTED_ENVELOPE",
    "Tombstone",
    "Transaction",
    "TransactionError",
    "TransientStoreError",
    "Uncommitted",
    "UncommittedEventsError",
    "UnknownCommand",
    "UnknownEventType",
    "UnknownSubscription",
    "UnsupportedEventLoop",
    "UnsupportedOperation",
    "event_class",
    "open_store",
    "partition_of",
    "register_upcaster",
    "subject_token",
    "upcaster",
    "wait_for_subscriptions",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresEventStore":  # imported on first use: asyncpg is an optional extra
        from .stores.postgres import PostgresEventStore

        PostgresEventStore.__module__ = __name__
        return PostgresEventStore
    raise AttributeError(f"module 'eventuality' has no attribute {name!r}")


def _fix_module_names() -> None:
    """Report public names as ``eventuality.X``, where users import them from."""
    for name in __all__:
        value = globals().get(name)
        if isinstance(value, type) or callable(value):
            with contextlib.suppress(AttributeError, TypeError):
                value.__module__ = __name__


_fix_module_names()
