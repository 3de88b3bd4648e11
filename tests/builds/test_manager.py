"""The build manager's service functions, called directly: registration, FIFO dispatch, job
tokens, phase and log reports, results with their events, requeue and the sweeper."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone

from accounts import services as account_services
from builds import manager
from builds import services as build_services
from builds.models import Build, BuildLogEntry, BuildWorker, Phase
from notifications.models import NotificationEvent
from registry.models import RepositoryAccessToken, RepositoryPermission, Role
from registry.tokens import BadCredentials, principal_from_basic
from tests.builds.manager_support import SECRET, builds_on, eager_celery, world
from tests.workers import start_worker

FIXTURES = (builds_on, eager_celery, world)  # pytest finds them here, by name

DIGEST = "sha256:" + "ab" * 32


def register(host="build-1", capacity=1, secret=SECRET) -> BuildWorker:
    return manager.worker_register(
        secret=secret,
        host=host,
        version="1.0.0",
        capacity=capacity,
        channel_name=f"chan.{host}",
        remote_addr="10.0.0.9",
    )


def start(build: Build, worker: BuildWorker) -> dict:
    """Dispatch and take the job message, as the worker's consumer does."""
    manager.dispatch_pending()
    job = manager.job_for_worker(worker=worker)
    assert job is not None and job["build_id"] == str(build.uuid)
    return job


def entries_of(build: Build) -> list[tuple[int, str, str]]:
    return list(BuildLogEntry.objects.filter(build=build).order_by("seq").values_list("seq", "type", "message"))


def events(kind: str) -> list[dict]:
    return [event.payload for event in NotificationEvent.objects.filter(kind=kind).order_by("pk")]


# ---------------------------------------------------------------------------------------------
# Registration


def test_register_with_the_secret_records_an_idle_worker(world):
    worker = register(host="builder-a", capacity=2)
    worker.refresh_from_db()
    assert (worker.host, worker.version, worker.capacity, worker.state) == ("builder-a", "1.0.0", 2, "idle")
    assert worker.channel_name == "chan.builder-a" and worker.remote_addr == "10.0.0.9"
    assert worker.last_heartbeat is not None


@pytest.mark.parametrize(
    "secret, capacity, reason",
    [
        ("wrong", 1, "bad registration secret"),
        (None, 1, "bad registration secret"),
        (SECRET, 0, "capacity must be a whole number"),
        (SECRET, "2", "capacity must be a whole number"),
        (SECRET, 1000, "capacity must be a whole number"),
    ],
)
def test_register_refused(world, secret, capacity, reason):
    with pytest.raises(manager.WorkerRefused, match=reason):
        register(secret=secret, capacity=capacity)
    assert not BuildWorker.objects.exists()


def test_register_refused_while_no_secret_is_configured(world, settings):
    settings.BUILDER_REGISTRATION_SECRET = ""
    with pytest.raises(manager.WorkerRefused, match="no registration secret"):
        register(secret="")


def test_register_accepts_the_secret_stored_by_the_superuser(world, settings):
    settings.BUILDER_REGISTRATION_SECRET = ""
    build_services.build_settings_update(registration_secret="stored-secret")
    assert register(secret="stored-secret").pk
    with pytest.raises(manager.WorkerRefused):
        register(secret=SECRET)


# ---------------------------------------------------------------------------------------------
# Dispatch


def test_dispatch_is_fifo_over_two_workers(world):
    first, second, third = world.build(), world.build(), world.build()
    w1, w2 = register("one"), register("two")

    assignments = manager.dispatch_pending()

    assert [(a.build.pk, a.worker.pk) for a in assignments] == [(first.pk, w1.pk), (second.pk, w2.pk)]
    for build, worker in ((first, w1), (second, w2)):
        build.refresh_from_db()
        worker.refresh_from_db()
        assert (build.phase, build.worker_id, build.attempts) == (Phase.BUILD_SCHEDULED, worker.pk, 1)
        assert worker.state == BuildWorker.State.BUSY
        assert entries_of(build) == [(0, "phase", "build-scheduled")]
    third.refresh_from_db()
    assert (third.phase, third.worker_id, third.attempts) == (Phase.WAITING, None, 0)
    assert manager.dispatch_pending() == []

    # The first worker finishes: the third build goes to it, the oldest waiting one.
    job = manager.job_for_worker(worker=w1)
    manager.phase_report(worker_id=w1.pk, build_id=job["build_id"], attempt=1, phase="building")
    manager.result_report(worker_id=w1.pk, build_id=job["build_id"], attempt=1, ok=True, manifest_digests=[DIGEST])
    assert [(a.build.pk, a.worker.pk) for a in manager.dispatch_pending()] == [(third.pk, w1.pk)]


def test_dispatch_fills_a_worker_up_to_its_capacity(world):
    builds = [world.build() for _ in range(3)]
    worker = register(capacity=2)
    assert [a.build.pk for a in manager.dispatch_pending()] == [builds[0].pk, builds[1].pk]
    worker.refresh_from_db()
    assert worker.state == BuildWorker.State.BUSY
    jobs = [manager.job_for_worker(worker=worker), manager.job_for_worker(worker=worker)]
    assert [job["build_id"] for job in jobs] == [str(builds[0].uuid), str(builds[1].uuid)]
    assert manager.job_for_worker(worker=worker) is None


def test_dispatch_skips_silent_and_offline_workers(world):
    build = world.build()
    silent = register("silent")
    BuildWorker.objects.filter(pk=silent.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=120))
    gone = register("gone")
    manager.worker_disconnected(worker_id=gone.pk)
    assert manager.dispatch_pending() == []
    live = register("live")
    assert [(a.build.pk, a.worker.pk) for a in manager.dispatch_pending()] == [(build.pk, live.pk)]


def test_a_build_is_never_assigned_twice(world):
    builds = [world.build() for _ in range(4)]
    workers = [register(f"w{n}") for n in range(2)]
    assigned = manager.dispatch_pending() + manager.dispatch_pending()
    assert len(assigned) == 2 and len({a.build.pk for a in assigned}) == 2
    # A worker's disconnect requeues its build; the next dispatch gives it out exactly once more.
    manager.worker_disconnected(worker_id=workers[0].pk)
    third = register("w2")
    again = manager.dispatch_pending()
    assert [(a.build.pk, a.worker.pk) for a in again] == [(builds[0].pk, third.pk)]
    build = Build.objects.get(pk=builds[0].pk)
    assert (build.phase, build.attempts, build.worker_id) == (Phase.BUILD_SCHEDULED, 2, third.pk)


@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_assign_each_build_once(tmp_path):
    """Four dispatcher processes at once (the Celery worker and Daphne both dispatch): each build
    goes to one worker once, no worker gets more than its capacity."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STORAGE_DIR", "STORAGE_BACKEND")}
    env.update(DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="tests.settings")
    if connection.vendor != "sqlite":
        # The processes meet in this test's own database (committed here, flushed afterwards).
        db = connection.settings_dict
        user, password = quote(db["USER"] or "", safe=""), quote(db["PASSWORD"] or "", safe="")
        env["DATABASE_URL"] = (
            f"postgres://{user}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )

    def run(*args):
        return start_worker("tests.builds.dispatch_race", env, *args)

    def finish(process):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-4000:]
        return json.loads(out.splitlines()[-1]) if out.strip() else None

    finish(run("setup", "10", "3", "2"))
    at = str(time.time() + 3)
    dispatched = [pair for result in [finish(p) for p in [run("dispatch", at) for _ in range(4)]] for pair in result]
    rows = finish(run("rows"))

    assert len(dispatched) == 6 and len({build for build, _ in dispatched}) == 6
    assigned = [row for row in rows if row[1] == "build-scheduled"]
    assert sorted(row[0] for row in assigned) == sorted(build for build, _ in dispatched)
    # FIFO: the six oldest builds went, each exactly once.
    assert [row[0] for row in assigned] == [row[0] for row in rows[:6]]
    assert all(row[3] == 1 for row in assigned) and all(row[1:] == ["waiting", None, 0] for row in rows[6:])
    per_worker = Counter(row[2] for row in assigned)
    assert sorted(per_worker.values()) == [2, 2, 2]


# ---------------------------------------------------------------------------------------------
# The job and its token


def test_job_message_and_its_token(world, settings):
    settings.SERVER_HOSTNAME = "registry.example:8443"
    settings.PREFERRED_URL_SCHEME = "https"
    build = world.build(tags=["latest", "v1"])
    worker = register()
    job = start(build, worker)

    assert job["type"] == "job" and job["attempt"] == 1
    assert job["package_url"] == f"https://registry.example:8443/buildpack/{build.uuid}"
    assert job["package_kind"] == "dockerfile"
    assert job["registry"] == "registry.example:8443" and job["registry_insecure"] is False
    assert job["repository"] == "alice/app" and job["tags"] == ["latest", "v1"]
    assert job["dockerfile_path"] == "Dockerfile" and job["context"] == ""
    assert job["git"] is None and job["pull_credentials"] is None
    # The plaintext goes out once; the build keeps the hashed row, write on this repository only.
    assert manager.job_for_worker(worker=worker) is None
    build.refresh_from_db()
    row = RepositoryAccessToken.objects.get(pk=build.access_token_id)
    assert row.role == Role.WRITE and row.repository_id == world.repository.pk
    assert job["token"] not in (row.code_hash, row.code_prefix)
    lifetime = (row.expiration - row.created).total_seconds()
    assert abs(lifetime - settings.BUILD_JOB_TOKEN_SECONDS) < 5
    principal = principal_from_basic("$token", job["token"])
    assert (principal.access_token_repository_id, principal.access_token_role) == (world.repository.pk, Role.WRITE)


def test_job_carries_the_pull_robot_credentials(world, settings):
    settings.PREFERRED_URL_SCHEME = ""
    robot, robot_token = account_services.robot_create(namespace=world.alice.namespace, short_name="puller")
    RepositoryPermission.objects.create(repository=world.repository, user=robot, role=Role.READ)
    build = world.build(pull_robot=robot.username)
    job = start(build, register())
    assert job["pull_credentials"] == {"username": "alice+puller", "password": robot_token}
    assert job["registry_insecure"] is True


# ---------------------------------------------------------------------------------------------
# Phases


def test_first_phase_starts_the_build(world):
    world.listen("build_start")
    build = world.build()
    worker = register()
    start(build, worker)

    assert manager.phase_report(worker_id=worker.pk, build_id=str(build.uuid), attempt=1, phase="unpacking") == (
        True,
        "",
    )
    ok = manager.phase_report(
        worker_id=worker.pk, build_id=build.uuid, attempt=1, phase="pulling", status={"pull_completion": 0.5}
    )
    assert ok == (True, "")
    build.refresh_from_db()
    assert build.phase == Phase.PULLING and build.started is not None
    assert build.status == {"pull_completion": 0.5}
    assert [m for _, t, m in entries_of(build) if t == "phase"] == ["build-scheduled", "unpacking", "pulling"]
    [payload] = events("build_start")
    assert payload["build_id"] == str(build.uuid) and payload["docker_tags"] == ["latest"]


def test_phases_refused(world):
    build = world.build()
    worker, other = register("mine"), register("other")
    manager.dispatch_pending()
    holder = worker if Build.objects.get(pk=build.pk).worker_id == worker.pk else other
    stranger = other if holder is worker else worker
    manager.job_for_worker(worker=holder)
    build_id = str(build.uuid)

    def report(worker_id, attempt, phase):
        return manager.phase_report(worker_id=worker_id, build_id=build_id, attempt=attempt, phase=phase)

    assert report(stranger.pk, 1, "building") == (False, "not assigned to this worker")
    assert report(holder.pk, 2, "building") == (False, "stale attempt")
    assert report(holder.pk, 1, "dancing") == (False, "unknown phase")
    assert report(holder.pk, 1, "complete") == (False, "unknown phase")
    assert report(holder.pk, 1, "building") == (True, "")
    assert report(holder.pk, 1, "unpacking") == (False, "already building")
    assert manager.phase_report(worker_id=holder.pk, build_id="not-a-uuid", attempt=1, phase="pushing") == (
        False,
        "unknown build",
    )
    build_services.build_cancel(build=Build.objects.get(pk=build.pk), principal=world.principal())
    assert report(holder.pk, 1, "pushing") == (False, "cancelled")
    assert manager.job_stop_reason(worker_id=holder.pk, build_id=build_id, attempt=1) == "cancelled"
    build.refresh_from_db()
    assert build.phase == Phase.CANCELLED


# ---------------------------------------------------------------------------------------------
# Logs


def test_log_entries_are_ordered_and_typed_across_attempts(world):
    build = world.build()
    first = register("first")
    start(build, first)
    stored = manager.log_append(
        worker_id=first.pk,
        build_id=str(build.uuid),
        attempt=1,
        entries=[
            {"stream": "STEP 1/2: FROM alpine\n"},
            {"status": "Copying blob", "id": "abc123", "progressDetail": {"current": 1, "total": 2}},
            {"stream": "line one\nline two\n"},
            "not an object",
        ],
    )
    assert [e.seq for e in stored] == [1, 2, 3, 4]
    manager.worker_disconnected(worker_id=first.pk)  # requeued: a phase entry says so

    second = register("second")
    start(build, second)
    # The old attempt is over: its late lines are not stored.
    assert manager.log_append(worker_id=first.pk, build_id=str(build.uuid), attempt=1, entries=[{"stream": "x"}]) == []
    manager.log_append(
        worker_id=second.pk,
        build_id=str(build.uuid),
        attempt=2,
        entries=[{"stream": "Step 2/2 : RUN make\n"}, {"error": "make: failed", "errorDetail": {"code": 2}}],
    )
    assert entries_of(build) == [
        (0, "phase", "build-scheduled"),
        (1, "command", "STEP 1/2: FROM alpine"),
        (2, "", "abc123: Copying blob"),
        (3, "", "line one"),
        (4, "", "line two"),
        (5, "phase", "waiting"),
        (6, "phase", "build-scheduled"),
        (7, "command", "Step 2/2 : RUN make"),
        (8, "error", "make: failed"),
    ]
    build.refresh_from_db()
    assert build.log_count == 9
    assert build.status == {"current_command": 2, "total_commands": 2}
    assert BuildLogEntry.objects.get(build=build, seq=2).data == {
        "id": "abc123",
        "progressDetail": {"current": 1, "total": 2},
    }
    assert BuildLogEntry.objects.get(build=build, seq=5).data["reason"] == "the build worker disconnected"


def test_oversized_log_messages_are_clipped(world):
    build = world.build()
    worker = register()
    start(build, worker)
    huge = "x" * (manager.MAX_LOG_MESSAGE_CHARS + 10)
    entries = [{"stream": huge}] + [{"stream": f"{n}\n"} for n in range(manager.MAX_LOG_ENTRIES_PER_MESSAGE + 5)]
    stored = manager.log_append(worker_id=worker.pk, build_id=build.uuid, attempt=1, entries=entries)
    assert len(stored) == manager.MAX_LOG_ENTRIES_PER_MESSAGE
    assert len(stored[0].message) == manager.MAX_LOG_MESSAGE_CHARS


# ---------------------------------------------------------------------------------------------
# Results


def test_success_completes_the_build(world, eager_celery, django_capture_on_commit_callbacks):
    world.listen("build_success", "build_failure")
    build = world.build()
    worker = register()
    job = start(build, worker)
    token_id = Build.objects.get(pk=build.pk).access_token_id
    manager.phase_report(worker_id=worker.pk, build_id=job["build_id"], attempt=1, phase="pushing")
    with django_capture_on_commit_callbacks(execute=True):
        result = manager.result_report(
            worker_id=worker.pk,
            build_id=job["build_id"],
            attempt=1,
            ok=True,
            image_id="sha256:" + "cd" * 32,
            manifest_digests=[DIGEST, "not a digest"],
        )
    assert result == (True, "")
    build.refresh_from_db()
    worker.refresh_from_db()
    assert build.phase == Phase.COMPLETE and build.completed is not None
    assert build.manifest_digests == [DIGEST] and build.image_id == "sha256:" + "cd" * 32
    assert build.access_token_id is None and not RepositoryAccessToken.objects.filter(pk=token_id).exists()
    with pytest.raises(BadCredentials):
        principal_from_basic("$token", job["token"])
    assert worker.state == BuildWorker.State.IDLE
    # The log went to storage, the package was released.
    assert build.logs_archived and build.package_id is None
    assert not BuildLogEntry.objects.filter(build=build).exists()
    [payload] = events("build_success")
    assert payload["image_id"] == "sha256:" + "cd" * 32 and payload["manifest_digests"] == [DIGEST]
    assert events("build_failure") == []
    # A second result for the same attempt changes nothing.
    again = manager.result_report(worker_id=worker.pk, build_id=job["build_id"], attempt=1, ok=False, message="late")
    assert again == (False, "complete")


def test_failure_records_the_error(world):
    world.listen("build_failure")
    build = world.build()
    worker = register()
    job = start(build, worker)
    result = manager.result_report(
        worker_id=worker.pk, build_id=job["build_id"], attempt=1, ok=False, error_kind="dockerfile", message="no FROM"
    )
    assert result == (True, "")
    build.refresh_from_db()
    assert (build.phase, build.error_kind, build.error_message) == (Phase.ERROR, "dockerfile", "no FROM")
    assert build.access_token_id is None and not RepositoryAccessToken.objects.exists()
    assert entries_of(build)[-2:] == [(1, "error", "no FROM"), (2, "phase", "error")]
    [payload] = events("build_failure")
    assert payload["error_message"] == "no FROM" and payload["build_id"] == str(build.uuid)


def test_failure_of_an_unknown_kind_is_internal(world):
    build = world.build()
    worker = register()
    job = start(build, worker)
    manager.result_report(worker_id=worker.pk, build_id=job["build_id"], attempt=1, ok=False, error_kind="weird")
    build.refresh_from_db()
    assert (build.error_kind, build.error_message) == ("internal", "The build failed")


def test_result_for_a_cancelled_build_is_refused(world):
    world.listen("build_success")
    build = world.build()
    worker = register()
    job = start(build, worker)
    build_services.build_cancel(build=Build.objects.get(pk=build.pk), principal=world.principal())
    result = manager.result_report(worker_id=worker.pk, build_id=job["build_id"], attempt=1, ok=True)
    assert result == (False, "cancelled")
    build.refresh_from_db()
    worker.refresh_from_db()
    assert build.phase == Phase.CANCELLED and events("build_success") == []
    assert worker.state == BuildWorker.State.IDLE


# ---------------------------------------------------------------------------------------------
# Heartbeats and the sweeper


def test_silent_worker_requeues_then_internalerror(world):
    world.listen("build_failure")
    build = world.build()
    later = timezone.now()
    tokens = []
    for attempt in (1, 2, 3):
        worker = register(f"w{attempt}")
        job = start(build, worker)
        assert job["attempt"] == attempt
        tokens.append(job["token"])
        manager.phase_report(worker_id=worker.pk, build_id=job["build_id"], attempt=attempt, phase="building")
        # Heartbeats keep it; silence past the timeout loses it.
        manager.worker_heartbeat(worker_id=worker.pk, build_id=job["build_id"])
        assert manager.builds_sweep(now=timezone.now() + timedelta(seconds=30))["requeued"] == 0
        later = timezone.now() + timedelta(seconds=61)
        counts = manager.builds_sweep(now=later)
        build.refresh_from_db()
        worker.refresh_from_db()
        assert worker.state == BuildWorker.State.OFFLINE
        assert build.access_token_id is None and not RepositoryAccessToken.objects.exists()
        # The lost attempt's token and messages are worthless now.
        with pytest.raises(BadCredentials):
            principal_from_basic("$token", job["token"])
        report = manager.phase_report(worker_id=worker.pk, build_id=job["build_id"], attempt=attempt, phase="pushing")
        assert report[0] is False
        if attempt < 3:
            assert counts["requeued"] == 1 and build.phase == Phase.WAITING and build.worker_id is None
        else:
            assert counts["failed"] == 1
    assert build.phase == Phase.INTERNAL_ERROR and build.error_kind == "internal"
    assert build.completed is not None
    [payload] = events("build_failure")
    assert "3 times" in payload["error_message"]
    phases = [m for _, t, m in entries_of(build) if t == "phase"]
    assert phases == [
        "build-scheduled",
        "building",
        "waiting",
        "build-scheduled",
        "building",
        "waiting",
        "build-scheduled",
        "building",
        "internalerror",
    ]
    assert manager.dispatch_pending() == []


def test_sweeper_requeues_an_assigned_job_that_was_never_started(world):
    build = world.build()
    worker = register()
    manager.dispatch_pending()
    manager.worker_heartbeat(worker_id=worker.pk, build_id=None)
    Build.objects.filter(pk=build.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=61))
    assert manager.builds_sweep()["requeued"] == 1
    build.refresh_from_db()
    worker.refresh_from_db()
    assert build.phase == Phase.WAITING and worker.state == BuildWorker.State.IDLE


def test_sweeper_prunes_long_offline_workers(world):
    old = register("old")
    manager.worker_disconnected(worker_id=old.pk)
    BuildWorker.objects.filter(pk=old.pk).update(disconnected=timezone.now() - timedelta(days=8))
    recent = register("recent")
    manager.worker_disconnected(worker_id=recent.pk)
    assert manager.builds_sweep()["pruned"] == 1
    assert list(BuildWorker.objects.values_list("host", flat=True)) == ["recent"]


def test_disconnect_requeues_at_once_and_deletes_the_token(world):
    build = world.build()
    worker = register()
    job = start(build, worker)
    requeued = manager.worker_disconnected(worker_id=worker.pk)
    assert [b.pk for b in requeued] == [build.pk]
    build.refresh_from_db()
    worker.refresh_from_db()
    assert (build.phase, build.worker_id, build.access_token_id) == (Phase.WAITING, None, None)
    assert worker.state == BuildWorker.State.OFFLINE and worker.disconnected is not None
    with pytest.raises(BadCredentials):
        principal_from_basic("$token", job["token"])
    assert manager.job_stop_reason(worker_id=worker.pk, build_id=job["build_id"], attempt=1) == "requeued"
