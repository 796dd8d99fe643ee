"""SMTP DATA into a spool, not into memory (issue 11: memory).

aiosmtpd collects a message's lines in a list, then joins them, then decodes a copy:
three copies of every message in memory while its handler runs, for every session at
once. SpoolingSMTP writes the lines to a `mtasts.reports.spool.Spool` as they arrive
(memory up to its threshold, a temporary file beyond) and hands the handler the spool as
``envelope.spool``; ``envelope.content`` stays empty. The size limit (RFC 1870 SIZE,
``data_size_limit``) is kept: past it the rest is read and dropped, and the answer is
552 (RFC 5321 §4.5.3.1.10 and RFC 1870 §6.3).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiosmtpd.smtp import MISSING, SMTP, Envelope

from mtasts.reports.spool import DEFAULT_THRESHOLD, Spool

log = logging.getLogger("mtasts.reports.smtp")


class SpoolEnvelope(Envelope):
    """An envelope whose message is in ``spool`` (None before DATA)."""

    spool: Spool | None = None


class SpoolingSMTP(SMTP):
    """aiosmtpd's SMTP with DATA written to a Spool; see the module docstring."""

    spool_threshold: int = DEFAULT_THRESHOLD
    spool_dir: Path | None = None

    def _create_envelope(self) -> Envelope:
        return SpoolEnvelope()

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert isinstance(envelope, SpoolEnvelope)
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        spool = Spool(self.spool_threshold, self.spool_dir)
        limit = self.data_size_limit
        size = 0
        too_much = too_long = False
        fragments: list[bytes] = []
        try:
            while self.transport is not None:
                try:
                    line = await self._reader.readuntil(b"\r\n")
                except asyncio.LimitOverrunError as exc:
                    # RFC 5321 §4.5.3.1.6: a line longer than the stream limit; drained
                    too_long = True
                    line = await self._reader.read(exc.consumed)
                except asyncio.CancelledError:
                    log.info("connection lost during DATA")
                    self._writer.close()
                    raise
                if not fragments and line == b".\r\n":
                    break
                size += len(line)
                if limit and size > limit:
                    too_much = True
                if too_much or too_long:
                    fragments.clear()
                    continue
                fragments.append(line)
                if line.endswith(b"\r\n"):
                    whole = b"".join(fragments)
                    fragments.clear()
                    if len(whole) > self.line_length_limit:
                        too_long = True
                        continue
                    # RFC 5321 §4.5.2: undo dot-stuffing
                    spool.write(whole[1:] if whole.startswith(b".") else whole)
            if too_much or too_long:
                spool.close()
                await self.push(
                    "552 5.3.4 Error: Too much mail data"
                    if too_much
                    else "500 Line too long (see RFC5321 4.5.3.1.6)"
                )
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                return
            envelope.spool = spool
            envelope.content = envelope.original_content = b""
            status = await self._call_handler_hook("DATA")
        finally:
            spool.close()
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)
