"""Garbage collection running back to back, with no grace period, while two clients push over
HTTP into two repositories sharing layers: every push ends with an image that pulls back intact
(after retries that answered MANIFEST_BLOB_UNKNOWN, as a client's retry would), and never with a
manifest whose blobs are gone. Processes on a file database (see tests/gc/race.py)."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest
from django.db import connection

from tests.workers import start_worker

PUSHES = 20


def _run(env, *args):
    return start_worker("tests.gc.race", env, *args)


def _finish(process) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-4000:]
    return json.loads(out.splitlines()[-1]) if out.strip() else {}


@pytest.mark.django_db(transaction=True)
def test_pushes_survive_garbage_collection_running_back_to_back(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STORAGE_DIR", "STORAGE_BACKEND")}
    env.update(DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="tests.settings", GC_GRACE_SECONDS="0")
    if connection.vendor != "sqlite":
        # The processes meet in this test's own database (committed here, flushed afterwards).
        db = connection.settings_dict
        user, password = quote(db["USER"] or "", safe=""), quote(db["PASSWORD"] or "", safe="")
        env["DATABASE_URL"] = (
            f"postgres://{user}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    _finish(_run(env, "setup"))
    stop = tmp_path / "stop-collecting"
    collector = _run(env, "gc", str(stop))
    try:
        pushers = [
            _run(env, "push", seed, str(PUSHES), f"app:{seed}", f"other:{seed}") for seed in ("one", "two")
        ]
        pushed = [_finish(process) for process in pushers]
    finally:
        stop.touch()
    collected = _finish(collector)
    final = _finish(_run(env, "verify"))

    for result in pushed:
        assert result["failures"] == [], result
        assert result["pushed"] == PUSHES
    assert collected["errors"] == [] and final["problems"] == []
    assert collected["passes"] > 1
    # Each of the four tags moved PUSHES / 2 times, with no time machine: all but the last
    # manifest of each went, by the passes during the pushes or the last one.
    assert final["tags"] == 4 and final["manifests"] == 4
    assert collected["manifests"] + final["manifests_deleted"] == 2 * PUSHES - 4
    # What is stored is exactly what the four images need.
    assert final["blob_rows"] == len(final["stored"])
