"""Which partition a stream belongs to: a hash every process and Python version agrees on.

CRC-32 (``zlib.crc32``, the IEEE polynomial) of the stream id's UTF-8 bytes, modulo the number
of partitions. Python's ``hash()`` is salted per process, so it could not be used; CRC-32 is a
fixed, documented checksum that any language (or a SQL function, should a backend filter in
SQL) computes the same way.
"""

from __future__ import annotations

import zlib

__all__ = ["MAX_PARTITIONS", "check_partition", "check_partitions", "partition_of"]

#: More partitions than this would only add checkpoints and reads, never throughput.
MAX_PARTITIONS = 1024


def partition_of(stream_id: str, partitions: int) -> int:
    """The partition, from 0 to ``partitions - 1``, that handles the events of ``stream_id``.

    :raises ValueError: ``partitions`` is not an int from 1 to :data:`MAX_PARTITIONS`.
    """
    check_partitions(partitions)
    if not isinstance(stream_id, str):
        raise TypeError(f"a stream id is a str, not {type(stream_id).__name__}")
    return zlib.crc32(stream_id.encode("utf-8", "surrogatepass")) % partitions


def check_partitions(partitions: object) -> int:
    """``partitions`` as given, when it is a usable number of partitions.

    :raises ValueError: it is not an int from 1 to :data:`MAX_PARTITIONS`.
    """
    if (
        not isinstance(partitions, int)
        or isinstance(partitions, bool)
        or not 1 <= partitions <= MAX_PARTITIONS
    ):
        raise ValueError(
            f"partitions must be an int from 1 to {MAX_PARTITIONS} (how many parts the log is "
            f"split into, by stream), not {partitions!r}"
        )
    return partitions


def check_partition(partition: object) -> tuple[int, int]:
    """``partition`` as given, when it is ``(index, partitions)`` with ``0 <= index < partitions``.

    :raises ValueError: it is not such a pair.
    """
    if not isinstance(partition, tuple) or len(partition) != 2:
        raise ValueError(f"partition must be a pair (index, partitions), not {partition!r}")
    index, partitions = partition
    check_partitions(partitions)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < partitions:
        raise ValueError(
            f"partition index must be an int from 0 to {partitions - 1}, not {index!r}"
        )
    return index, partitions
