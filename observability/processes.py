"""Housekeeping of the metrics directory between processes (no Django needed: the gunicorn
master, which never loads the application, calls it too).

Each process writes ``<type>_<pid>.db`` files. Counters and histograms of a process that exited
must keep counting in the totals while the machine runs (a restarted gunicorn worker must not
make ``quay_http_requests_total`` go backwards), so its files stay; they are removed when
``manage.py serve`` starts again, by which time every process of the previous run is gone.
"""

import os
import re
from pathlib import Path

_FILE_RE = re.compile(r"^(?:counter|histogram|summary|gauge_[a-z]+)_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # somebody else's process: not ours to judge
    return True


def remove_dead_process_files(path: str | os.PathLike) -> int:
    """Delete the files of processes that no longer run; returns how many went.

    Files of live processes stay: a Celery worker started on its own beside ``serve --no-worker``
    keeps its counts when the web server restarts.
    """
    removed = 0
    directory = Path(path)
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        match = _FILE_RE.match(entry.name)
        if match and not _alive(int(match.group(1))):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """gunicorn's child_exit: drop the exited worker's live gauges (its counters stay)."""
    path = path or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path or not os.path.isdir(path):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)
