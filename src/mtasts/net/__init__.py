"""All network I/O: DNS, the HTTPS policy fetch and the SMTP STARTTLS probe."""

import sys

# httpx imports its own command line (httpx._main) whenever click, rich and pygments are
# installed, as they are next to Typer: about half of httpx's import time at every start of
# `mtasts check`, for a program mtasts never runs. None in sys.modules makes that import
# fail, and httpx then skips it (its `except ImportError`). Set here, before any module of
# this package imports httpx (tests/test_startup_imports.py).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
