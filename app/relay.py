"""The outbox relay: after a commit, hand the ids of the outbox rows it wrote to whoever delivers them. The
entry point connects the target (rq for gunicorn and `punchpass worker`, the embedded worker for
`punchpass serve`); unconnected, rows simply wait for a sweep. A failed hand-over loses nothing: the rows stay
pending and the periodic sweep finds them. (The same after-commit hook as warehouse's `warehouse/tasks.py`.)"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from app.models import OutboxEvent

Dispatch = Callable[[list[int]], None]


class OutboxRelay:
    def __init__(self, sessions: sessionmaker) -> None:
        self.dispatch: Dispatch | None = None
        event.listen(sessions, "after_flush", _collect)
        event.listen(sessions, "after_commit", self._relay)
        event.listen(sessions, "after_rollback", _forget)

    def connect(self, dispatch: Dispatch | None) -> None:
        """Where committed outbox ids go from now on (None: nowhere, the sweep delivers them)."""
        self.dispatch = dispatch

    def _relay(self, session: Session) -> None:
        ids = session.info.pop("outbox_ids", None)
        dispatch = self.dispatch
        if ids and dispatch is not None:
            dispatch(ids)


def _collect(session: Session, _context) -> None:
    ids = [obj.id for obj in session.new if isinstance(obj, OutboxEvent)]
    if ids:
        session.info.setdefault("outbox_ids", []).extend(ids)


def _forget(session: Session) -> None:
    session.info.pop("outbox_ids", None)
