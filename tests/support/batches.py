"""Stand-ins for the two things ``EventConsumer._on_batch`` reads of a FastStream batch: the records'
headers, topic and position. Tests hand a consumer an exact batch this way, so the outcome does not
depend on how the broker happens to group messages; everything past the batch (Postgres, the index,
the dead-letter producer where given) is real."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Record:
    headers: list[tuple[str, bytes]]
    topic: str = "cairn.models.v1"
    partition: int = 0
    offset: int = 0
    key: bytes = b""


@dataclass
class Batch:
    raw_message: tuple[Record, ...]
