"""Received reports wait on disk, not in memory (issue 11: memory).

A report body (HTTPS) or a mail's DATA (SMTP) is written to a Spool while it arrives: the
first ``threshold`` bytes stay in memory, anything larger moves to an unnamed temporary
file. Many senders uploading at once then cost little RAM while they wait for a parse
slot (`mtasts.reports.gate`).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import IO

DEFAULT_THRESHOLD = 256 * 1024


class Spool:
    """A write-then-read buffer that moves to a temporary file above ``threshold``."""

    def __init__(self, threshold: int = DEFAULT_THRESHOLD, directory: Path | None = None) -> None:
        self.threshold = threshold
        self.directory = directory
        self.size = 0
        self._file: IO[bytes] = io.BytesIO()
        self.on_disk = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.on_disk and self.size + len(data) > self.threshold:
            if self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
            # unnamed: gone when closed; kept open across calls, closed by close()
            disk = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115
            assert isinstance(self._file, io.BytesIO)
            disk.write(self._file.getbuffer())
            self._file.close()
            self._file, self.on_disk = disk, True
        self._file.write(data)
        self.size += len(data)

    def read(self) -> bytes:
        """Everything written, as one bytes object (read when a parse slot is held)."""
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
