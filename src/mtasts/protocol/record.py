"""The `_mta-sts` TXT record (RFC 8461 §3.1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StsRecord:
    id: str
    extensions: tuple[tuple[str, str], ...]  # in record order
    raw: str

    def serialize(self) -> str:
        """Strict form: ``v=STSv1; id=<id>`` then extensions, ``; `` separated."""
        raise NotImplementedError


def parse_sts_record(raw: str) -> StsRecord:
    """Parse one record against the exact ABNF; raise RecordError with a specific code."""
    raise NotImplementedError


def select_sts_record(records: Sequence[str]) -> StsRecord:
    """From all TXT records at `_mta-sts.<domain>` (strings already concatenated), discard
    those not starting with `v=STSv1`, then: zero -> RecordError("record-missing"), several ->
    RecordError("record-multiple"), one -> parse_sts_record()."""
    raise NotImplementedError
