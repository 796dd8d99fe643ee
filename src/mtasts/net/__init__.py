"""All network I/O: DNS, the HTTPS policy fetch and the SMTP STARTTLS probe."""

import sys

# httpx imports its command-line client, and with it Rich, click and pygments, whenever they
# are installed (they come with Typer): about half of httpx's import time at every start of
# `mtasts check`, and about 6 MiB resident in `mtasts policyd`; mtasts never uses it. A
# module that is None in sys.modules fails to import, and httpx then goes without it. Set
# here, before any of these modules imports httpx (tests/test_startup_imports.py).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
