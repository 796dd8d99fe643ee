"""The `_smtp._tls` TLS-RPT TXT record (RFC 8460 §3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsRptRecord:
    rua: tuple[str, ...]  # decoded URIs (`%2C` etc. kept as written), mailto: or https:
    extensions: tuple[tuple[str, str], ...]
    raw: str

    def serialize(self) -> str:
        """Strict form: ``v=TLSRPTv1; rua=<uri>,<uri>`` with `,`/`!`/`;` inside URIs encoded."""
        raise NotImplementedError


def parse_tlsrpt_record(raw: str) -> TlsRptRecord:
    raise NotImplementedError


def select_tlsrpt_record(records: Sequence[str]) -> TlsRptRecord:
    """Same selection rule as MTA-STS: keep records starting with `v=TLSRPTv1`; zero ->
    TlsRptRecordError("tlsrpt-missing"), several -> "tlsrpt-multiple"."""
    raise NotImplementedError
