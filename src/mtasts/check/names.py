"""Domain names as users type them: one normal form (lower-case A-labels, no trailing dot),
or a ValueError that says what is wrong. Light on purpose: the CLI validates its input with
it before loading the diagnosis engine."""

from __future__ import annotations

import idna


def normalize_domain(text: str) -> str:
    """Lower-case A-label form without trailing dot; ValueError with a clear message."""
    name = text.strip().rstrip(".").lower()
    if not name or " " in name or "/" in name or "@" in name:
        raise ValueError(f"{text!r} is not a domain name (give e.g. example.com)")
    try:
        alabel = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        # RFC 1035 §2.3.4: labels of at most 63 octets, names of at most 253 in text form
        reason = {
            "Label too long": "a label is longer than 63 octets",
            "Domain too long": "the name is longer than 253 octets",
        }.get(str(exc), str(exc))
        raise ValueError(f"{text!r} is not a valid domain name: {reason}") from exc
    if "." not in alabel:
        raise ValueError(f"{text!r} is not a fully qualified domain name")
    return alabel
