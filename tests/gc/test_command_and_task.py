"""The ways a pass starts: ``manage.py gc``, the Celery task, and celery beat's schedule (which the
embedded default runs inside its worker)."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from django.core.management import CommandError, call_command

from quay_site.celery import app
from registry import tasks
from registry.models import GarbageCollectionRun
from tests.gc.conftest import digests, image_of, layer, stored_digests
from tests.storage.conftest import BASE_DIR, free_port, wait_for

# What would point the server at another database, broker or storage than its own DATA_DIR.
FOREIGN_ENV_PREFIXES = ("S3_", "STORAGE_", "DATABASE_URL", "REDIS_URL", "CELERY_", "DJANGO_SETTINGS", "GC_")


def test_the_command_runs_a_pass_and_prints_what_it_removed(settings, alice, repo, pusher):
    settings.GC_GRACE_SECONDS = 0
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    image = pusher.push(repo, "v1", image_of("gone", layer("gone", 2000)))
    pusher.untag(repo, "v1")
    out = io.StringIO()

    call_command("gc", stdout=out)

    run = GarbageCollectionRun.objects.get()
    freed = sum(len(b) for b in image.blobs)
    assert run.trigger == GarbageCollectionRun.Trigger.COMMAND
    lines = out.getvalue().splitlines()
    assert lines[0] == f"Garbage collection (run {run.pk}):"
    assert lines[1:7] == [
        "  tags expired:       0",
        "  tags dropped:       1",
        "  manifests deleted:  1",
        "  blob links deleted: 2",
        "  blobs deleted:      2",
        "  uploads cleaned:    0",
    ]
    assert lines[7] == f"  space freed:        {freed} bytes ({freed / 1024:.1f} KiB)"
    assert lines[8].startswith("  time:")
    assert not digests(image) & stored_digests()


def test_the_command_can_be_limited_to_one_repository(settings, alice, repo, pusher):
    settings.GC_GRACE_SECONDS = 0
    pusher.blobs(repo, image_of("pending", layer("pending")))
    out = io.StringIO()

    call_command("gc", "--repository", "alice/app", stdout=out)

    run = GarbageCollectionRun.objects.get()
    assert run.repository == repo and run.blobs_deleted == 2
    assert out.getvalue().startswith(f"Garbage collection of alice/app (run {run.pk}):")
    with pytest.raises(CommandError, match="No repository alice/missing"):
        call_command("gc", "--repository", "alice/missing", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No repository NOT VALID"):
        call_command("gc", "--repository", "NOT VALID", stdout=io.StringIO())


def test_the_periodic_task_runs_a_pass(settings, repo, pusher):
    settings.GC_GRACE_SECONDS = 0
    image = image_of("pending", layer("pending"))
    pusher.blobs(repo, image)

    result = tasks.gc_periodic.apply()

    run = GarbageCollectionRun.objects.get()
    assert result.successful() and result.result == run.pk
    assert run.trigger == GarbageCollectionRun.Trigger.PERIODIC and run.blobs_deleted == 2
    assert not digests(image) & stored_digests()


def test_beat_schedules_the_task_every_interval(settings):
    app.loader.import_default_modules()
    assert "registry.gc_periodic" in app.tasks
    entry = app.conf.beat_schedule["garbage-collection"]
    assert entry["task"] == "registry.gc_periodic"
    assert entry["schedule"] == settings.GC_INTERVAL_SECONDS == 600
    assert entry["options"] == {"expires": 600}
    assert settings.GC_GRACE_SECONDS == 3600
    assert app.conf.beat_schedule_filename == str(settings.DATA_DIR / "celerybeat-schedule")


def test_the_embedded_default_runs_periodic_passes(tmp_path):
    """``manage.py serve`` as ``make run`` starts it (SQLite, filesystem broker): its worker runs
    beat, and passes show up every GC_INTERVAL_SECONDS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV_PREFIXES)}
    env.update(
        DJANGO_SETTINGS_MODULE="quay_site.settings",
        DATA_DIR=str(tmp_path),
        HOME=str(tmp_path),
        PORT=str(free_port()),
        WS_PORT=str(free_port()),
        WEB_WORKERS="1",
        GC_INTERVAL_SECONDS="1",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=BASE_DIR, env=env, check=True, timeout=120
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def finished_periodic_runs() -> list[str]:
        with closing(sqlite3.connect(tmp_path / "db.sqlite3", timeout=30)) as db:
            return [
                error
                for (error,) in db.execute(
                    "SELECT error FROM registry_garbagecollectionrun"
                    " WHERE trigger = 'periodic' AND finished IS NOT NULL"
                )
            ]

    try:
        runs = wait_for(
            lambda: len(errors := finished_periodic_runs()) >= 2 and errors,
            timeout=90,
            what="two periodic garbage collection passes",
            process=process,
            log=log,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    assert set(runs) == {""}, runs
    assert list(tmp_path.glob("celerybeat-schedule*"))
