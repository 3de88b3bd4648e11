"""The build manager: what happens when build workers register, take jobs, report and vanish.

Synchronous service functions; the websocket consumers (builds/consumers.py) and the Celery
tasks (builds/tasks.py) only call them. docs/BUILDS.md is the protocol and lifecycle.

Every change to a build is one transaction holding the build's row lock (``select_for_update``;
SQLite serializes writers anyway), and each check is made under that lock: a message is
accepted only from the build's current worker, for its current attempt, while the build is not
final. That, plus a job token per attempt that is deleted when the attempt ends, is what keeps a
build from being run or pushed twice when workers disconnect, time out or come back late. Rows
are always locked build first, worker second, so two managers never deadlock. The locks are FOR
NO KEY UPDATE: they exclude each other as FOR UPDATE would, but not the share locks PostgreSQL's
foreign-key checks take on a build or worker row (log lines, tokens and builds refer to them),
which FOR UPDATE waits for and which deadlocked against it on the repository row under load
(registry.services._lock_repository). No locked row is deleted in the same transaction.

After a commit the manager wakes whoever must react (builds/wakeup.py): the worker's consumer
(a job to send, a build to stop) and the build's live viewers.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts import crypto
from accounts import services as account_services
from builds import packages, selectors, wakeup
from builds.models import FINAL_PHASES, Build, BuildLogEntry, BuildWorker, Phase
from builds.services import build_event_emit
from notifications import events as notification_events
from quay_site.faults import pause
from registry.models import RepositoryAccessToken, Role
from triggers import selectors as trigger_selectors
from triggers import services as trigger_services

# Phases in which a build belongs to a worker (assigned or running).
ACTIVE_PHASES = (Phase.BUILD_SCHEDULED, Phase.UNPACKING, Phase.PULLING, Phase.BUILDING, Phase.PUSHING)
# A worker only moves forward through these (repeating the current one refreshes its status).
_PHASE_ORDER = {phase: n for n, phase in enumerate(ACTIVE_PHASES)}

MAX_CAPACITY = 16
JOB_TOKEN_LENGTH = 64
# What one message may store: a worker gone wrong must not fill the database in one go.
MAX_LOG_ENTRIES_PER_MESSAGE = 500
MAX_LOG_MESSAGE_CHARS = 16 * 1024
MAX_STATUS_CHARS = 16 * 1024
MAX_MANIFEST_DIGESTS = 64
# Disconnected workers stay listed (superuser panel, a build's history) this long.
OFFLINE_WORKER_RETENTION = timedelta(days=7)
# The sweeper archives logs that were left in the database this long after their build ended.
ARCHIVE_GRACE = timedelta(minutes=2)
ARCHIVE_BATCH = 50

# buildah prints "STEP 2/3: RUN make", docker "Step 2/3 : RUN make".
_STEP_RE = re.compile(r"^(?:STEP|Step) (\d+)/(\d+) ?:")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z")


logger = logging.getLogger(__name__)


class WorkerRefused(Exception):
    """A worker may not register; the message is the reason sent back to it."""


@dataclass(frozen=True)
class Assignment:
    """A build handed to a worker by ``dispatch_pending``."""

    build: Build
    worker: BuildWorker


# ---------------------------------------------------------------------------------------------
# Workers


def worker_register(
    *, secret: str, host: str, version: str, capacity, channel_name: str, remote_addr: str | None
) -> BuildWorker:
    """Record a newly connected worker, or raise WorkerRefused (wrong secret, bad capacity)."""
    if not selectors.build_settings().registration_secret:
        raise WorkerRefused("no registration secret is configured on this registry")
    if not selectors.registration_secret_matches(secret):
        raise WorkerRefused("bad registration secret")
    if capacity is None:
        capacity = 1
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= MAX_CAPACITY:
        raise WorkerRefused(f"capacity must be a whole number from 1 to {MAX_CAPACITY}")
    return BuildWorker.objects.create(
        host=str(host or "")[:255],
        version=str(version or "")[:64],
        capacity=capacity,
        state=BuildWorker.State.IDLE,
        channel_name=channel_name[:255],
        remote_addr=(remote_addr or "")[:64],
        last_heartbeat=timezone.now(),
    )


def worker_heartbeat(*, worker_id: int, build_id=None) -> None:
    """A worker is alive (and, with ``build_id``, still on that build)."""
    now = timezone.now()
    BuildWorker.objects.filter(pk=worker_id).exclude(state=BuildWorker.State.OFFLINE).update(last_heartbeat=now)
    if build_id:
        Build.objects.filter(uuid=_uuid_or_none(build_id), worker_id=worker_id, phase__in=ACTIVE_PHASES).update(
            last_heartbeat=now
        )


def worker_disconnected(*, worker_id: int) -> list[Build]:
    """The worker's websocket closed: its builds go back to the queue at once."""
    now = timezone.now()
    with transaction.atomic():
        builds = list(
            Build.objects.select_for_update(no_key=True)
            .filter(worker_id=worker_id, phase__in=ACTIVE_PHASES)
            .select_related("repository__namespace")
            .order_by("pk")
        )
        for build in builds:
            _requeue(build, now=now, reason="the build worker disconnected")
        BuildWorker.objects.filter(pk=worker_id).update(state=BuildWorker.State.OFFLINE, disconnected=now)
    return builds


def worker_refresh(*, worker_id: int) -> BuildWorker | None:
    """Recompute a connected worker's displayed state from the builds it holds."""
    with transaction.atomic():
        worker = BuildWorker.objects.select_for_update(no_key=True).filter(pk=worker_id).first()
        if worker is None:
            return None
        _set_worker_state(worker)
    return worker


def _set_worker_state(worker: BuildWorker) -> None:
    if worker.state == BuildWorker.State.OFFLINE:
        return
    active = Build.objects.filter(worker=worker, phase__in=ACTIVE_PHASES).count()
    state = BuildWorker.State.BUSY if active >= worker.capacity else BuildWorker.State.IDLE
    if state != worker.state:
        worker.state = state
        BuildWorker.objects.filter(pk=worker.pk).update(state=state)


# ---------------------------------------------------------------------------------------------
# Dispatch


def dispatch_pending() -> list[Assignment]:
    """Hand waiting builds to workers with a free slot, oldest build first; return what was done.

    One transaction per assignment keeps row locks short. On PostgreSQL, ``skip_locked`` lets
    several dispatchers run at once: each takes a build and a worker nobody else holds.
    """
    assignments = []
    while True:
        assignment = _assign_one()
        if assignment is None:
            return assignments
        assignments.append(assignment)


def _assign_one() -> Assignment | None:
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.BUILD_HEARTBEAT_TIMEOUT_SECONDS)
    candidates = list(
        BuildWorker.objects.exclude(state=BuildWorker.State.OFFLINE).filter(last_heartbeat__gte=cutoff).order_by("pk")
    )
    if not candidates:
        return None
    active = dict(
        Build.objects.filter(worker__in=candidates, phase__in=ACTIVE_PHASES)
        .values_list("worker_id")
        .annotate(n=Count("id"))
        .values_list("worker_id", "n")
    )
    # Most free slots first, then the least busy: work spreads over the fleet.
    candidates = [worker for worker in candidates if active.get(worker.pk, 0) < worker.capacity]
    candidates.sort(key=lambda w: (-(w.capacity - active.get(w.pk, 0)), active.get(w.pk, 0), w.pk))
    if not candidates:
        return None
    with transaction.atomic():
        build = (
            Build.objects.select_for_update(no_key=True, skip_locked=True)
            .filter(phase=Phase.WAITING)
            .order_by("created", "pk")
            .first()
        )
        if build is None:
            return None
        for candidate in candidates:
            worker = (
                BuildWorker.objects.select_for_update(no_key=True, skip_locked=True)
                .exclude(state=BuildWorker.State.OFFLINE)
                .filter(pk=candidate.pk, last_heartbeat__gte=cutoff)
                .first()
            )
            # Counted again under the worker's lock: another dispatcher may have filled it.
            if (
                worker is None
                or Build.objects.filter(worker=worker, phase__in=ACTIVE_PHASES).count() >= worker.capacity
            ):
                continue
            build.phase = Phase.BUILD_SCHEDULED
            build.worker = worker
            build.attempts += 1
            build.last_heartbeat = now
            build.status = {}
            build.save(update_fields=["phase", "worker", "attempts", "last_heartbeat", "status"])
            _append_phase_entry(build, Phase.BUILD_SCHEDULED, {"attempt": build.attempts})
            pause("build.claimed")  # tests/faults: claim written, not committed
            _set_worker_state(worker)
            _after_commit_wake(worker=worker, build=build)
            return Assignment(build=build, worker=worker)
        return None


def job_for_worker(*, worker: BuildWorker) -> dict | None:
    """The job message for the oldest build assigned to ``worker`` and not yet sent, or None.

    Creates the attempt's job token (write on this repository only, short-lived) and saves it
    on the build; the plaintext exists only in the message returned.
    """
    with transaction.atomic():
        build = (
            Build.objects.select_for_update(no_key=True, of=("self",))
            .filter(worker_id=worker.pk, phase=Phase.BUILD_SCHEDULED, access_token__isnull=True)
            .select_related("repository__namespace", "package", "pull_robot")
            .order_by("created", "pk")
            .first()
        )
        if build is None:
            return None
        token_row, token = _job_token_create(build)
        build.access_token = token_row
        build.save(update_fields=["access_token"])
        return _job_message(build, token)


def _job_token_create(build: Build) -> tuple[RepositoryAccessToken, str]:
    token = crypto.random_token(JOB_TOKEN_LENGTH)
    row = RepositoryAccessToken.objects.create(
        repository=build.repository,
        friendly_name=f"build {build.uuid} attempt {build.attempts}",
        code_prefix=token[: RepositoryAccessToken.PREFIX_LENGTH],
        code_hash=crypto.token_hash(token),
        role=Role.WRITE,
        expiration=timezone.now() + timedelta(seconds=settings.BUILD_JOB_TOKEN_SECONDS),
    )
    return row, token


def _job_message(build: Build, token: str) -> dict:
    repository = build.repository
    git = None
    if build.git:
        # The trigger's deploy key is not stored on the build: it is read (decrypted) only here,
        # into the one message that goes to the worker.
        git = {
            "url": build.git.get("url", ""),
            "sha": build.git.get("sha", ""),
            "ref": build.git.get("ref", ""),
            "private_key": trigger_selectors.trigger_private_key(build.trigger_uuid) if build.trigger_uuid else None,
        }
    pull_credentials = None
    robot_user = build.pull_robot
    if robot_user is not None and robot_user.is_robot and hasattr(robot_user, "robot"):
        pull_credentials = {
            "username": robot_user.username,
            "password": account_services.robot_token(robot=robot_user.robot),
        }
    return {
        "type": "job",
        "build_id": str(build.uuid),
        "attempt": build.attempts,
        "token": token,
        "package_url": notification_events.public_url(f"/buildpack/{build.uuid}") if build.package_id else None,
        "package_kind": _package_kind(build),
        "git": git,
        "context": build.context,
        "dockerfile_path": build.dockerfile_path,
        "registry": notification_events.public_host(),
        "registry_insecure": (settings.PREFERRED_URL_SCHEME or "http") != "https",
        "repository": f"{repository.namespace.name}/{repository.name}",
        "tags": list(build.tags or []),
        "pull_credentials": pull_credentials,
    }


def _package_kind(build: Build) -> str | None:
    if build.package is None:
        return None
    # What the server recognised when the bytes came in (an upload or a URL's answer).
    return packages.package_kind(build.package)


def job_stop_reason(*, worker_id: int, build_id, attempt) -> str | None:
    """Why a job a worker holds must stop (``cancelled``, ``requeued``...), or None if it goes on."""
    build = Build.objects.filter(uuid=_uuid_or_none(build_id)).only("worker_id", "attempts", "phase").first()
    return _refusal(build, worker_id, attempt)


# ---------------------------------------------------------------------------------------------
# Reports from the worker


def phase_report(*, worker_id: int, build_id, attempt, phase: str, status=None) -> tuple[bool, str]:
    """A worker's phase change; returns (accepted, reason refused)."""
    now = timezone.now()
    with transaction.atomic():
        build = _locked_build(build_id)
        reason = _refusal(build, worker_id, attempt)
        if reason:
            return False, reason
        if phase not in _PHASE_ORDER or phase == Phase.BUILD_SCHEDULED:
            return False, "unknown phase"
        if build.cancel_requested:
            return False, "cancelled"
        if _PHASE_ORDER[phase] < _PHASE_ORDER[build.phase]:
            return False, f"already {build.phase}"
        fields = ["last_heartbeat"]
        build.last_heartbeat = now
        if isinstance(status, dict) and status and len(json.dumps(status)) <= MAX_STATUS_CHARS:
            build.status = {**build.status, **status}
            fields.append("status")
        if phase != build.phase:
            first = build.started is None
            build.phase = phase
            fields.append("phase")
            if first:
                build.started = now
                fields.append("started")
            build.save(update_fields=fields)
            _append_phase_entry(build, phase)
            if first:
                build_event_emit(build=build, event="build_start")
        else:
            build.save(update_fields=fields)
        BuildWorker.objects.filter(pk=worker_id).update(last_heartbeat=now)
        _after_commit_wake(build=build)
    return True, ""


def log_append(*, worker_id: int, build_id, attempt, entries) -> list[BuildLogEntry]:
    """Store a worker's log entries (Docker's JSON stream shapes) in order; return the rows.

    Refused messages (another worker, an old attempt, a finished build) store nothing.
    """
    if not isinstance(entries, list) or not entries:
        return []
    now = timezone.now()
    with transaction.atomic():
        build = _locked_build(build_id)
        if _refusal(build, worker_id, attempt):
            return []
        rows = []
        status_changed = False
        for entry in entries[:MAX_LOG_ENTRIES_PER_MESSAGE]:
            for kind, message, data in _log_lines(entry):
                step = _STEP_RE.match(message) if kind == BuildLogEntry.Type.COMMAND else None
                if step:
                    build.status["current_command"] = int(step.group(1))
                    build.status["total_commands"] = int(step.group(2))
                    status_changed = True
                rows.append(BuildLogEntry(build=build, seq=0, type=kind, message=message, data=data))
        if not rows:
            return []
        for n, row in enumerate(rows):
            row.seq = build.log_count + n
        # One INSERT for the whole message; seq continues from the row's count, under its lock.
        BuildLogEntry.objects.bulk_create(rows)
        build.log_count += len(rows)
        build.last_heartbeat = now
        fields = ["log_count", "last_heartbeat"] + (["status"] if status_changed else [])
        build.save(update_fields=fields)
        _after_commit_wake(build=build)
    return rows


def _log_lines(entry) -> list[tuple[str, str, dict]]:
    """(type, message, data) rows for one Docker JSON stream object."""
    if not isinstance(entry, dict):
        return []
    if "error" in entry:
        detail = entry.get("errorDetail")
        data = {"errorDetail": detail} if isinstance(detail, dict) else {}
        return [(BuildLogEntry.Type.ERROR, _clip(entry.get("error")), data)]
    if "stream" in entry:
        stream = entry.get("stream")
        if not isinstance(stream, str):
            return []
        # A chunk may hold several lines (or a part of one): one row per line, as printed.
        lines = stream.splitlines() or [""]
        rows = []
        for line in lines:
            if not line.strip():
                continue
            kind = BuildLogEntry.Type.COMMAND if _STEP_RE.match(line) else BuildLogEntry.Type.OUTPUT
            rows.append((kind, _clip(line), {}))
        return rows
    if "status" in entry:
        data = {key: entry[key] for key in ("id", "progressDetail", "progress") if key in entry}
        if len(json.dumps(data)) > MAX_STATUS_CHARS:
            data = {}
        status = _clip(entry.get("status"))
        prefix = f"{entry['id']}: " if isinstance(entry.get("id"), str) else ""
        return [(BuildLogEntry.Type.OUTPUT, _clip(prefix + status), data)]
    return []


def _clip(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if value is not None else ""
    return text[:MAX_LOG_MESSAGE_CHARS]


def result_report(
    *,
    worker_id: int,
    build_id,
    attempt,
    ok: bool,
    image_id: str = "",
    manifest_digests=None,
    error_kind: str = "",
    message: str = "",
) -> tuple[bool, str]:
    """The end of a worker's job; returns (accepted, reason refused).

    A result for a build that ended meanwhile (cancelled) is refused but frees the worker.
    """
    now = timezone.now()
    with transaction.atomic():
        build = _locked_build(build_id)
        reason = _refusal(build, worker_id, attempt)
        if reason:
            if build is not None and build.worker_id == worker_id:
                worker = BuildWorker.objects.select_for_update(no_key=True).filter(pk=worker_id).first()
                if worker is not None:
                    _set_worker_state(worker)
                    _after_commit_dispatch()
            return False, reason
        token_id = build.access_token_id
        build.access_token = None
        build.completed = now
        build.last_heartbeat = now
        if ok:
            digests = [d for d in (manifest_digests or []) if isinstance(d, str) and _DIGEST_RE.match(d)]
            build.phase = Phase.COMPLETE
            build.image_id = str(image_id or "")[:200]
            build.manifest_digests = digests[:MAX_MANIFEST_DIGESTS]
            build.save(
                update_fields=["phase", "access_token", "completed", "last_heartbeat", "image_id", "manifest_digests"]
            )
            _append_phase_entry(build, Phase.COMPLETE)
            build_event_emit(
                build=build, event="build_success", image_id=build.image_id, manifest_digests=build.manifest_digests
            )
        else:
            kinds = set(Build.ErrorKind.values)
            build.phase = Phase.ERROR
            build.error_kind = error_kind if error_kind in kinds else Build.ErrorKind.INTERNAL
            build.error_message = _clip(message or "The build failed").strip()[:4000]
            build.save(
                update_fields=["phase", "access_token", "completed", "last_heartbeat", "error_kind", "error_message"]
            )
            _append_entry(build, BuildLogEntry.Type.ERROR, build.error_message, {"kind": build.error_kind})
            _append_phase_entry(build, Phase.ERROR)
            build_event_emit(build=build, event="build_failure", error_message=build.error_message)
        if token_id:
            RepositoryAccessToken.objects.filter(pk=token_id).delete()
        worker = BuildWorker.objects.select_for_update(no_key=True).filter(pk=worker_id).first()
        if worker is not None:
            _set_worker_state(worker)
        _after_commit_finished(build)
    return True, ""


# ---------------------------------------------------------------------------------------------
# The sweeper


def builds_sweep(*, now: datetime | None = None) -> dict:
    """Requeue builds whose worker went silent, mark silent workers offline, prune old ones."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BUILD_HEARTBEAT_TIMEOUT_SECONDS)
    counts = {"requeued": 0, "failed": 0, "offline": 0, "pruned": 0, "archived": 0}
    stale_ids = list(
        Build.objects.filter(phase__in=ACTIVE_PHASES)
        .exclude(last_heartbeat__gte=cutoff, worker__isnull=False)
        .values_list("pk", flat=True)
    )
    for build_pk in stale_ids:
        with transaction.atomic():
            build = (
                Build.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
                .select_related("repository__namespace")
                .filter(pk=build_pk, phase__in=ACTIVE_PHASES)
                .first()
            )
            # Checked again under the lock: a heartbeat may have come in meanwhile.
            if build is None or (build.worker_id and build.last_heartbeat and build.last_heartbeat >= cutoff):
                continue
            requeued = _requeue(build, now=now, reason="the build worker stopped responding")
            counts["requeued" if requeued else "failed"] += 1
    counts["offline"] = (
        BuildWorker.objects.exclude(state=BuildWorker.State.OFFLINE)
        .exclude(last_heartbeat__gte=cutoff)
        .update(state=BuildWorker.State.OFFLINE, disconnected=now)
    )
    counts["pruned"], _ = BuildWorker.objects.filter(
        state=BuildWorker.State.OFFLINE, disconnected__lt=now - OFFLINE_WORKER_RETENTION
    ).delete()
    # Finished builds whose log is still in the database: the archive after the end failed, or
    # the process that ended the build stopped first.
    unarchived = (
        Build.objects.filter(phase__in=FINAL_PHASES, logs_archived=False, completed__lt=now - ARCHIVE_GRACE)
        .order_by("completed")
        .values_list("pk", flat=True)[:ARCHIVE_BATCH]
    )
    for build_pk in list(unarchived):
        build_finish_storage(build_pk=build_pk)
        counts["archived"] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Shared steps (inside the caller's transaction, the build row locked)


def _requeue(build: Build, *, now: datetime, reason: str) -> bool:
    """Take a build from its worker: back to ``waiting``, or ``internalerror`` when it has had
    its assignments. The attempt's token goes, so the old worker can push nothing more."""
    old_worker_id = build.worker_id
    token_id = build.access_token_id
    build.access_token = None
    build.worker = None
    build.last_heartbeat = None
    build.status = {}
    requeued = build.attempts < settings.BUILD_MAX_ATTEMPTS
    if requeued:
        build.phase = Phase.WAITING
        build.save(update_fields=["phase", "worker", "access_token", "last_heartbeat", "status"])
        _append_phase_entry(build, Phase.WAITING, {"reason": reason})
    else:
        build.phase = Phase.INTERNAL_ERROR
        build.completed = now
        build.error_kind = Build.ErrorKind.INTERNAL
        build.error_message = f"The build was given to a worker {build.attempts} times and {reason} each time"
        build.save(
            update_fields=[
                "phase",
                "worker",
                "access_token",
                "last_heartbeat",
                "status",
                "completed",
                "error_kind",
                "error_message",
            ]
        )
        _append_entry(build, BuildLogEntry.Type.ERROR, build.error_message, {"kind": build.error_kind})
        _append_phase_entry(build, Phase.INTERNAL_ERROR, {"reason": reason})
        build_event_emit(build=build, event="build_failure", error_message=build.error_message)
    if token_id:
        RepositoryAccessToken.objects.filter(pk=token_id).delete()
    if old_worker_id:
        worker = BuildWorker.objects.select_for_update(no_key=True).filter(pk=old_worker_id).first()
        if worker is not None:
            _set_worker_state(worker)
            # If it is still connected, its consumer tells it to stop.
            _after_commit_wake(worker=worker)
    if requeued:
        _after_commit_wake(build=build)
        _after_commit_dispatch()
    else:
        _after_commit_finished(build)
    return requeued


def _locked_build(build_id) -> Build | None:
    build_uuid = _uuid_or_none(build_id)
    if build_uuid is None:
        return None
    return (
        Build.objects.select_for_update(no_key=True, of=("self",))
        .select_related("repository__namespace")
        .filter(uuid=build_uuid)
        .first()
    )


def _refusal(build: Build | None, worker_id: int, attempt) -> str | None:
    if build is None:
        return "unknown build"
    if build.phase in FINAL_PHASES:
        return str(build.phase)
    if build.worker_id != worker_id:
        return "requeued" if build.phase == Phase.WAITING else "not assigned to this worker"
    if isinstance(attempt, bool) or attempt != build.attempts:
        return "stale attempt"
    return None


def _uuid_or_none(value):
    import uuid

    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _append_phase_entry(build: Build, phase: str, data: dict | None = None) -> None:
    # When each phase began, for the build page and for measuring queue-to-building latency.
    stamped = {"datetime": timezone.now().isoformat(), **(data or {})}
    _append_entry(build, BuildLogEntry.Type.PHASE, str(phase), stamped)


def _append_entry(build: Build, kind: str, message: str, data: dict) -> None:
    BuildLogEntry.objects.create(build=build, seq=build.log_count, type=kind, message=message, data=data)
    build.log_count += 1
    Build.objects.filter(pk=build.pk).update(log_count=build.log_count)


def _after_commit_wake(*, worker: BuildWorker | None = None, build: Build | None = None) -> None:
    if worker is not None:
        transaction.on_commit(lambda: wakeup.wake_worker(worker))
    if build is not None:
        build_uuid = build.uuid
        transaction.on_commit(lambda: wakeup.build_changed(build_uuid))


def _after_commit_dispatch() -> None:
    def queue():
        from builds import tasks

        tasks.build_dispatch.delay()

    transaction.on_commit(queue)


def _after_commit_finished(build: Build) -> None:
    """A build ended: tell its viewers, give its worker the next build, drop its package and
    archive its log (the sweeper retries an archive that failed)."""
    build_pk = build.pk
    _after_commit_wake(build=build)
    _after_commit_dispatch()
    transaction.on_commit(lambda: build_finish_storage(build_pk=build_pk))
    if build.trigger_uuid is not None:
        # Successive failures and internal errors disable a trigger (triggers.services).
        transaction.on_commit(lambda: trigger_services.trigger_build_finished(Build.objects.get(pk=build_pk)))


def build_finish_storage(*, build_pk: int) -> None:
    """Release a finished build's package and move its log to storage."""
    build = Build.objects.filter(pk=build_pk).first()
    if build is None or not build.is_final:
        return
    try:
        packages.package_release(build)
        packages.archive_logs(build)
    except Exception:  # storage trouble must not undo the result; the sweeper tries again
        logger.exception("archiving the log of build %s failed", build.uuid)
