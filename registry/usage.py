"""The usage log: audited actions written with the change, pulls written in batches.

Pushes, repository creation and tag changes are written in the same transaction as the change
they record. Pulls are the hottest read of a registry: writing a row inside every manifest GET
would serialize all pulls on the database's write lock (SQLite has one writer), so pull entries
are buffered per process and written in one INSERT at most every ``FLUSH_SECONDS`` and at exit.
"""

from __future__ import annotations

import atexit
import logging
import threading

from django.db import close_old_connections
from django.utils import timezone

from registry.models import Repository, UsageLog
from registry.permissions import Principal
from registry.rows import RowLoader

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
# Plain dicts: building a model instance per pull costs more than the rest of the logging.
_buffer: list[dict] = []
_lock = threading.Lock()
_wakeup = threading.Event()
_flusher: threading.Thread | None = None


def log_action(
    kind: str,
    *,
    principal: Principal,
    repository: Repository | None = None,
    ip: str | None = None,
    metadata: dict | None = None,
) -> UsageLog:
    entry = UsageLog(
        kind=kind,
        actor=principal.user,
        actor_name=principal.name,
        namespace_id=repository.namespace_id if repository is not None else None,
        repository=repository,
        ip=ip or None,
        metadata=metadata or {},
    )
    # A plain INSERT (no signals listen to UsageLog): every push and tag change writes one, and
    # the ORM's save() cost four times as much Python.
    _log_rows.insert(entry)
    return entry


_log_rows = RowLoader(UsageLog)


def log_pull(
    *, actor_id: int | None, actor_name: str, repository_id: int, namespace_id: int, ip: str | None, metadata: dict
) -> None:
    """Queue a pull entry; the caller passes ids from its token so no user row is fetched."""
    global _flusher
    entry = {
        "kind": UsageLog.Kind.PULL_REPO,
        "actor_id": actor_id,
        "actor_name": actor_name,
        "namespace_id": namespace_id,
        "repository_id": repository_id,
        "ip": ip or None,
        "metadata": metadata,
        "created": timezone.now(),
    }
    with _lock:
        _buffer.append(entry)
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flush_loop, name="usage-log-flusher", daemon=True)
            _flusher.start()


def flush() -> int:
    """Write the buffered pull entries now; returns how many were written."""
    with _lock:
        pending = _buffer[:]
        _buffer.clear()
    if pending:
        try:
            # auto_now_add would overwrite the time of the pull with the time of the flush.
            UsageLog.objects.bulk_create([UsageLog(**entry) for entry in pending])
        except Exception:
            log.exception("could not write %d pull log entries", len(pending))
    return len(pending)


def _flush_loop() -> None:
    while True:
        _wakeup.wait(FLUSH_SECONDS)
        _wakeup.clear()
        flush()
        close_old_connections()


atexit.register(flush)
