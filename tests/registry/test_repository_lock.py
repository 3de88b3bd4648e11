"""Tag writers and foreign-key checks on the repository row do not deadlock (PostgreSQL).

Found by the mixed load (bench/load.py --distributed): a few manifest PUTs in four minutes
answered 503 with "deadlock detected", a tag writer waiting for the repository row's lock and a
committing upload checking its blob link's foreign key on that row waiting for each other. The
workers below do the same two things from separate processes, as fast as they can; with the old
FOR UPDATE lock about half of them hit the deadlock within seconds.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.e2e.conftest import _PostgresDatabase, _worker_id
from tests.workers import start_worker

WORKERS = 8  # of each kind
SECONDS = 15


def _start(env, *args):
    return start_worker("tests.registry.repo_lock_race", env, *args)


# PostgreSQL in either configuration (its own when the suite runs on SQLite): run once.
@pytest.mark.config_independent
def test_tag_writers_and_foreign_key_checks_on_the_repository_do_not_deadlock(tmp_path, postgres_base):
    database = _PostgresDatabase.create(postgres_base, f"lockrace_{_worker_id()}")
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    try:
        setup = _start(env, "setup")
        _, err = setup.communicate(timeout=300)
        assert setup.returncode == 0, err
        start = time.time() + 3  # after every worker has imported Django
        workers = [_start(env, kind, str(start), str(SECONDS)) for kind in ("tags", "links") for _ in range(WORKERS)]
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=SECONDS + 120)
            results.append((worker.returncode, json.loads(out.strip().splitlines()[-1])["done"], err.strip()))
    finally:
        database.drop()
    failures = [err for code, _, err in results if code != 0]
    assert not failures, f"{len(failures)} of {len(results)} workers failed; the first:\n{failures[0]}"
    # Every worker got work done: neither kind starves the other.
    assert all(done > 0 for _, done, _ in results), results
