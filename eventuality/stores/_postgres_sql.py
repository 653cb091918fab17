"""The SQL the PostgreSQL store runs, for one schema (see postgres.py for why it is shaped so)."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from ._postgres_keys import KeyStatements

SCHEMA_VERSION = 2

# A position is transaction id * TRANSACTION_SLOTS + the event's place in its append.
TRANSACTION_SLOTS = 1 << 20

_COLUMNS = (
    "position, stream_id, version, event_type, schema_version, data, metadata, event_id, "
    "aggregate_id, occurred_at"
)


class Statements:
    """Every statement, with the schema name quoted in."""

    def __init__(self, schema: str) -> None:
        s = f'"{schema}"'
        events = f"{s}.eventuality_events"
        checkpoints = f"{s}.eventuality_checkpoints"
        snapshots = f"{s}.eventuality_snapshots"
        streams = f"{s}.eventuality_streams"
        commands = f"{s}.eventuality_commands"
        self.channel = f"eventuality_{schema}"
        self._lock_prefix = f"eventuality {schema}\x00".encode()
        self.schema_lock = f"SELECT pg_advisory_xact_lock(hashtextextended('eventuality {s}', 0))"
        self.create = [
            f"CREATE SCHEMA IF NOT EXISTS {s}",
            f"CREATE TABLE IF NOT EXISTS {s}.eventuality_schema "
            "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
            f"""CREATE TABLE IF NOT EXISTS {events} (
                position BIGINT PRIMARY KEY,
                stream_id BYTEA NOT NULL,
                version INTEGER NOT NULL,
                event_type TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                data JSON NOT NULL,
                metadata JSON NOT NULL,
                event_id UUID NOT NULL UNIQUE,
                aggregate_id BYTEA,
                occurred_at TIMESTAMPTZ NOT NULL,
                UNIQUE (stream_id, version)
            )""",
            f"CREATE INDEX IF NOT EXISTS eventuality_events_by_type "
            f"ON {events} (event_type, position)",
            f"""CREATE TABLE IF NOT EXISTS {checkpoints} (
                name TEXT PRIMARY KEY,
                position BIGINT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )""",
            f"""CREATE TABLE IF NOT EXISTS {snapshots} (
                stream_id BYTEA NOT NULL,
                version INTEGER NOT NULL,
                aggregate_type TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                state TEXT NOT NULL,
                PRIMARY KEY (stream_id, version)
            )""",
        ]
        # What takes the schema from ``version - 1`` to ``version``; a new schema runs them all
        # after schema 1. Schema 1 (0.1.0) to 2: only new tables, so the event rows never move.
        self.keys = KeyStatements(s)
        self.upgrades: dict[int, list[str]] = {
            2: [
                # Streams whose rows left the live log: deleted (for good) or archived.
                f"""CREATE TABLE IF NOT EXISTS {streams} (
                    stream_id BYTEA PRIMARY KEY,
                    state TEXT NOT NULL CHECK (state IN ('deleted', 'archived')),
                    version INTEGER NOT NULL,
                    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )""",
                # Archived rows, exactly as they were in eventuality_events.
                f"""CREATE TABLE IF NOT EXISTS {s}.eventuality_archive (
                    position BIGINT PRIMARY KEY,
                    stream_id BYTEA NOT NULL,
                    version INTEGER NOT NULL,
                    event_type TEXT NOT NULL,
                    schema_version INTEGER NOT NULL,
                    data JSON NOT NULL,
                    metadata JSON NOT NULL,
                    event_id UUID NOT NULL UNIQUE,
                    aggregate_id BYTEA,
                    occurred_at TIMESTAMPTZ NOT NULL,
                    UNIQUE (stream_id, version)
                )""",
                *self.keys.tables,
                f"""CREATE TABLE IF NOT EXISTS {commands} (
                    key TEXT PRIMARY KEY,
                    command_type TEXT NOT NULL,
                    command_id TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    first_position BIGINT NOT NULL,
                    last_position BIGINT NOT NULL,
                    recorded_at TIMESTAMPTZ NOT NULL
                )""",
                f"CREATE INDEX IF NOT EXISTS eventuality_commands_by_time "
                f"ON {commands} (recorded_at)",
            ],
        }
        self.schema_version = f"SELECT version FROM {s}.eventuality_schema WHERE id = 1"
        self.set_schema_version = (
            f"INSERT INTO {s}.eventuality_schema (id, version) VALUES (1, $1) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version"
        )

        # Takes (assigns, if need be) the transaction id and reads the streams' versions, in a
        # statement after begin_append's: its snapshot sees every append that held the locks.
        # The third column says which streams were deleted or archived ('state:version'),
        # one primary-key probe per stream in the same statement.
        self.prepare_append = f"""
            SELECT
                pg_current_xact_id()::text::bigint,
                ARRAY(
                    SELECT coalesce((SELECT max(e.version) FROM {events} e
                                     WHERE e.stream_id = u.stream_id), 0)
                    FROM unnest($1::bytea[]) WITH ORDINALITY AS u(stream_id, n) ORDER BY u.n
                ),
                ARRAY(
                    SELECT (SELECT g.state || ':' || g.version FROM {streams} g
                            WHERE g.stream_id = u.stream_id)
                    FROM unnest($1::bytea[]) WITH ORDINALITY AS u(stream_id, n) ORDER BY u.n
                )"""
        self.insert = f"""
            WITH inserted AS (
                INSERT INTO {events} ({_COLUMNS})
                SELECT p, s, v, t, sv, d, m, i, a, o FROM unnest(
                    $1::bigint[], $2::bytea[], $3::integer[], $4::text[], $5::integer[],
                    $6::json[], $7::json[], $8::uuid[], $9::bytea[], $10::timestamptz[]
                ) WITH ORDINALITY AS u(p, s, v, t, sv, d, m, i, a, o, n)
                ORDER BY n
                RETURNING 1
            )
            SELECT pg_notify($11, '') FROM (SELECT count(*) FROM inserted) AS done"""
        # The same insert, only if the command's key is new: ON CONFLICT DO NOTHING waits for
        # a concurrent commit of the same key and then inserts nothing (no events either).
        self.insert_command = f"""
            WITH command AS (
                INSERT INTO {commands} (key, command_type, command_id, digest, first_position,
                                        last_position, recorded_at)
                VALUES ($12, $13, $14, $15, $16, $17, $18)
                ON CONFLICT (key) DO NOTHING
                RETURNING 1
            ), inserted AS (
                INSERT INTO {events} ({_COLUMNS})
                SELECT p, s, v, t, sv, d, m, i, a, o FROM unnest(
                    $1::bigint[], $2::bytea[], $3::integer[], $4::text[], $5::integer[],
                    $6::json[], $7::json[], $8::uuid[], $9::bytea[], $10::timestamptz[]
                ) WITH ORDINALITY AS u(p, s, v, t, sv, d, m, i, a, o, n)
                WHERE EXISTS (SELECT 1 FROM command)
                ORDER BY n
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM command), pg_notify($11, '')
            FROM (SELECT count(*) FROM inserted) AS done"""
        self.get_command = (
            "SELECT command_type, command_id, digest, recorded_at, first_position, last_position "
            f"FROM {commands} WHERE key = $1"
        )
        self.read_positions = (
            f"SELECT {_COLUMNS} FROM {events} WHERE position BETWEEN $1 AND $2 ORDER BY position"
        )
        expired = f"SELECT key FROM {commands} WHERE recorded_at < $1"
        beyond = f"SELECT key FROM {commands} ORDER BY recorded_at DESC, key DESC OFFSET $2"
        self.prune_commands = (
            f"DELETE FROM {commands} WHERE key IN (SELECT key FROM {commands} WHERE "
            f"($1::timestamptz IS NOT NULL AND key IN ({expired})) OR "
            f"($2::bigint IS NOT NULL AND key IN ({beyond})) "
            "ORDER BY recorded_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
        )
        self.by_ids = f"SELECT {_COLUMNS} FROM {events} WHERE event_id = ANY($1::uuid[])"
        # A stream's rows, then (only for a deleted or archived stream, which has none) one
        # row whose last column says so: the state costs a primary-key probe, no round trip.
        self.read_stream = f"""
            SELECT {_COLUMNS}, NULL::text FROM {events}
            WHERE stream_id = $1 AND version >= $2 AND version <= $3
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   g.state || ':' || g.version
            FROM {streams} g WHERE g.stream_id = $1
            ORDER BY 3"""
        # Positions below the oldest transaction still running: nothing there can still appear.
        xmin = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        safe = f"position < {xmin} * {TRANSACTION_SLOTS}"
        self.read_log = (
            f"SELECT {_COLUMNS} FROM {events} WHERE position > $1 AND {safe} "
            "ORDER BY position LIMIT $2"
        )
        self.read_log_types = (
            f"SELECT {_COLUMNS} FROM {events} WHERE position > $1 AND {safe} "
            "AND event_type = ANY($3::text[]) ORDER BY position LIMIT $2"
        )
        self.last_position = f"SELECT coalesce(max(position), 0) FROM {events} WHERE {safe}"
        self.stream_version = f"""
            SELECT coalesce((SELECT max(version) FROM {events} WHERE stream_id = $1), 0),
                   (SELECT g.state || ':' || g.version FROM {streams} g WHERE g.stream_id = $1)"""
        self.get_checkpoint = f"SELECT position FROM {checkpoints} WHERE name = $1"
        self.lock_checkpoint = f"SELECT position FROM {checkpoints} WHERE name = $1 FOR UPDATE"
        self.insert_checkpoint = (
            f"INSERT INTO {checkpoints} (name, position) VALUES ($1, $2) "
            "ON CONFLICT (name) DO NOTHING"
        )
        self.move_checkpoint = (
            f"UPDATE {checkpoints} SET position = $2, updated_at = now() "
            "WHERE name = $1 AND position = $3"
        )
        self.try_lock = f"SELECT pg_try_advisory_lock(hashtextextended('{s}:' || $1, 0))"
        # Never a state of a forgotten subject (a load before the forget, saved after it).
        self.save_snapshot = (
            f"INSERT INTO {snapshots} (stream_id, version, aggregate_type, schema_version, state) "
            f"SELECT $1, $2, $3, $4, $5 WHERE NOT {self.keys.forgotten} "
            "ON CONFLICT (stream_id, version) DO UPDATE SET "
            "aggregate_type = excluded.aggregate_type, "
            "schema_version = excluded.schema_version, state = excluded.state"
        )
        self.load_snapshot = (
            f"SELECT version, aggregate_type, schema_version, state FROM {snapshots} "
            "WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT 1"
        )

    def begin_append(self, stream_ids: Iterable[bytes]) -> str:
        """BEGIN, then a transaction-level advisory lock per stream, in key order so that two
        appends to the same streams queue in one order and never deadlock: one round trip
        (simple protocol, so the keys are literals, computed here from a hash of schema and
        stream id). Two-key locks never meet the one-key ones of ``try_lock``."""
        keys = sorted({_lock_key(self._lock_prefix + stream_id) for stream_id in stream_ids})
        return "BEGIN; " + " ".join(f"SELECT pg_advisory_xact_lock({a}, {b});" for a, b in keys)


def _lock_key(data: bytes) -> tuple[int, int]:
    digest = hashlib.blake2b(data, digest_size=8).digest()
    first, second = struct.unpack(">ii", digest)
    return first, second
