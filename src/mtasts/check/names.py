"""Domain names as users type them: one normal form (lower-case A-labels, no trailing dot),
or a ValueError that says what is wrong. Light on purpose: the CLI validates its input with
it before loading the diagnosis engine."""

from __future__ import annotations

import idna

from mtasts.i18n import N_, _

_IDNA_REASONS = {
    "Label too long": N_("a label is longer than 63 octets"),
    "Domain too long": N_("the name is longer than 253 octets"),
}


def normalize_domain(text: str) -> str:
    """Lower-case A-label form without trailing dot; ValueError with a clear message."""
    name = text.strip().rstrip(".").lower()
    if not name or " " in name or "/" in name or "@" in name:
        raise ValueError(
            _("{text} is not a domain name (give e.g. example.com)").format(text=repr(text))
        )
    try:
        alabel = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        # RFC 1035 §2.3.4: labels of at most 63 octets, names of at most 253 in text form
        known = _IDNA_REASONS.get(str(exc))
        reason = _(known) if known else str(exc)
        raise ValueError(
            _("{text} is not a valid domain name: {reason}").format(text=repr(text), reason=reason)
        ) from exc
    if "." not in alabel:
        raise ValueError(_("{text} is not a fully qualified domain name").format(text=repr(text)))
    return alabel
