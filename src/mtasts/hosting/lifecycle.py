"""Data belongs to the hosting, not to the name.

A hosting (a ``Domain`` row: one tenant's claim on a name) owns its policy versions,
checks and audit events (bound by ``domain_id``), and, while it is the served hosting of
its name, the name's TLS reports and alerts (stored by name). When a hosting ends (a
pending claim removed or expired, a retirement finished, a name taken over by another
tenant's proven claim) its data is deleted, not kept for anyone:

- policy versions and checks: deleted with the row (ON DELETE CASCADE);
- audit events: unbound and emptied; only time, name and action stay, because the highest
  audit id is the store's change counter other processes follow (deleting rows could
  move it backwards);
- TLS reports and alerts of the name: deleted when the *served* hosting ends, and again
  when a hosting becomes served, so it starts empty (reports mailed for the name while
  nobody served it are not someone else's to read).

Ids of ended hostings are never handed out again (AUTOINCREMENT on SQLite, sequences on
PostgreSQL), so nothing can be inherited through a reused id either.
"""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from mtasts.store.models import Alert, AuditEvent, Domain, DomainState, TlsReport


def purge_name_data(db: Session, name: str) -> None:
    """Delete the TLS reports (their policies and failures cascade) and alerts of ``name``."""
    db.execute(delete(Alert).where(Alert.domain == name))
    db.execute(delete(TlsReport).where(TlsReport.domain == name))


def end_hosting(db: Session, domain: Domain) -> None:
    """Delete ``domain`` and everything stored for it (in ``db``'s transaction)."""
    db.execute(
        update(AuditEvent)
        .where(AuditEvent.domain_id == domain.id)
        .values(domain_id=None, user_id=None, detail={})
    )
    if domain.state in DomainState.SERVED:
        purge_name_data(db, domain.name)
    db.execute(delete(Domain).where(Domain.id == domain.id))
    db.expunge(domain)
