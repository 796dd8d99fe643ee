"""All network I/O: DNS, the HTTPS policy fetch and the SMTP STARTTLS probe."""

import asyncio
import importlib
import importlib.util
import sys
import types

# httpx imports its command-line client, and with it Rich, click and pygments, whenever they
# are installed (they come with Typer): about half of httpx's import time at every start of
# `mtasts check`, and about 6 MiB resident in `mtasts policyd`; mtasts never uses it. A
# module that is None in sys.modules fails to import, and httpx then goes without it. Set
# here, before any of these modules imports httpx (tests/test_startup_imports.py).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


class _MetadataOnDemand(types.ModuleType):
    """Stands for ``importlib.metadata`` until something uses it: the first attribute it
    lacks (``version``, ``distributions``...) imports the real module, which then takes
    its place in ``sys.modules`` and on the ``importlib`` package."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get("importlib.metadata") is self:
            del sys.modules["importlib.metadata"]
        real = importlib.import_module("importlib.metadata")
        return getattr(real, name)


def lazy_metadata() -> None:
    """Let dnspython start without reading every installed package's metadata.

    dnspython checks its optional features (IDNA 2008 through ``idna``, DNS over HTTPS...)
    with ``importlib.metadata``: importing it (email, zipfile, csv...) and scanning the
    installed distributions cost 20 to 60 ms at every start of `mtasts check` and `mtasts
    policyd`. Here ``importlib.metadata`` is imported only when something uses it (by
    anyone: see :class:`_MetadataOnDemand`), and the one feature dnspython asks about at
    import, ``idna``, is settled from the ``idna`` module's own version against dnspython's
    own requirement, so the answer is the one dnspython would reach. mtasts never uses DNS
    over HTTPS/QUIC: those are switched off."""
    if "importlib.metadata" not in sys.modules:
        stand_in = _MetadataOnDemand("importlib.metadata")
        stand_in.__spec__ = importlib.util.find_spec("importlib.metadata")
        sys.modules["importlib.metadata"] = stand_in
        importlib.metadata = stand_in
    import dns._features as features
    import idna

    have_idna = True
    for requirement in getattr(features, "_requirements", {}).get("idna", []):
        package, _, minimum = requirement.partition(">=")
        if package.strip() != "idna" or not minimum:
            return  # a requirement this code does not know: dnspython decides itself
        have_idna = features._tuple_from_text(idna.__version__) >= features._tuple_from_text(
            minimum
        )
    features.force("idna", have_idna)
    for name in ("doh", "doq"):
        features.force(name, False)


def event_loop() -> asyncio.Runner:
    """The event loop of a run that talks to many servers (`check`, `policyd`): uvloop when
    it is installed (uvicorn[standard], a dependency of mtasts, brings it), whose TLS and
    sockets cost less CPU per connection than the standard loop's pure-Python TLS layer
    (bench/check_bulk.py, bench/policyd.py); the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
