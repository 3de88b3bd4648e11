"""Writes about builds: the superuser's settings, uploaded sources, starting and cancelling.

Everything a request asks for is checked before anything is stored: the switch, the tags, the
paths, the pull robot, the source. A URL source is downloaded here, in the request, through the
guarded outbound client, before the Build row exists: the outbound deadline
(``OUTBOUND_TIMEOUT_SECONDS``) bounds the wait, the user sees a refused URL at once as a 400
instead of as a failed build later, and a build is never queued with a source that cannot be
had. Workers never reach user-given URLs.
"""

from __future__ import annotations

import logging
import posixpath
from typing import BinaryIO

from django.db import transaction
from django.utils import timezone

from accounts import crypto
from accounts import selectors as account_selectors
from accounts.models import Namespace, Team, User
from builds import packages, selectors
from builds.errors import (
    BuildError,
    BuildForbidden,
    BuildNotCancellable,
    BuildNotFound,
    BuildQueueFull,
    BuildsDisabled,
    PackageAlreadyUploaded,
    PackageError,
)
from builds.models import Build, BuildLogEntry, BuildPackage, BuildSettings, Phase
from notifications import events
from notifications.services import event_emit
from registry import names
from registry.models import Repository, RepositoryAccessToken, UsageLog
from registry.permissions import Principal
from registry.usage import log_action
from triggers import selectors as trigger_selectors

DEFAULT_TAGS = ("latest",)
MAX_TAGS = 50
MAX_PATH = 1024
# Quay refuses a cancel once the image is being pushed: stopping then could leave some tags moved
# and others not.
CANCELLABLE_PHASES = frozenset({Phase.WAITING, Phase.BUILD_SCHEDULED, Phase.UNPACKING, Phase.PULLING, Phase.BUILDING})
DOCKERFILE = "Dockerfile"

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Settings


@transaction.atomic
def build_settings_update(
    *,
    enabled: bool | None = None,
    registration_secret: str | None = None,
    max_queued_per_namespace: int | None = None,
) -> BuildSettings:
    """Change the superuser's build settings (None leaves a value as it is; an empty secret
    removes it). The secret is stored encrypted."""
    row, _ = BuildSettings.objects.select_for_update().get_or_create(pk=1)
    if enabled is not None:
        row.enabled = enabled
    if registration_secret is not None:
        row.registration_secret_encrypted = crypto.encrypt(registration_secret) if registration_secret else ""
    if max_queued_per_namespace is not None:
        if max_queued_per_namespace < 1:
            raise BuildError("The queue limit must be at least 1")
        row.max_queued_per_namespace = max_queued_per_namespace
    row.save()
    return row


def _require_enabled() -> None:
    if not selectors.builds_enabled():
        raise BuildsDisabled()


# ---------------------------------------------------------------------------------------------
# Packages (Quay's filedrop)


def package_create(*, owner: User, mime_type: str) -> BuildPackage:
    """Reserve an upload for ``owner``; the bytes come with ``package_upload``."""
    _require_enabled()
    return BuildPackage.objects.create(owner=owner, mime_type=(mime_type or "")[:255])


def package_upload(*, package: BuildPackage, stream: BinaryIO, length: int | None) -> BuildPackage:
    """Store the bytes of a reserved package: counted against the cap, hashed, recognised as a
    Dockerfile or an archive. A package is uploaded once; nothing is kept from a failed upload."""
    _require_enabled()
    if package.uploaded is not None:
        raise PackageAlreadyUploaded()
    spooled = packages.spool_stream(stream, length=length)
    try:
        with transaction.atomic():
            # The conditional UPDATE is the claim: of two racing uploads, the second waits on the
            # row (or on SQLite's write lock) and then finds it already uploaded.
            now = timezone.now()
            claimed = BuildPackage.objects.filter(pk=package.pk, uploaded__isnull=True).update(
                size=spooled.size, sha256=spooled.sha256, mime_type=spooled.mime_type, uploaded=now
            )
            if claimed != 1:
                raise PackageAlreadyUploaded()
            packages.package_publish(spooled=spooled, package=package)
    finally:
        spooled.discard()
    package.refresh_from_db()
    return package


def package_delete(*, package: BuildPackage) -> None:
    """Remove a package no build uses (an upload whose build request was then refused)."""
    if Build.objects.filter(package=package).exists():
        raise BuildError("This file belongs to a build; it goes when the build ends")
    packages.package_delete(package)


# ---------------------------------------------------------------------------------------------
# Starting a build


def _clean_tags(tags) -> list[str]:
    if tags is None:
        return list(DEFAULT_TAGS)
    if not isinstance(tags, list | tuple) or not tags:
        raise BuildError("docker_tags must be a non-empty list of tag names")
    if len(tags) > MAX_TAGS:
        raise BuildError(f"At most {MAX_TAGS} tags can be applied by one build")
    cleaned: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not names.TAG_RE.match(tag):
            raise BuildError(f"Invalid tag name: {tag!r}")
        if tag in cleaned:
            raise BuildError(f"The tag {tag} is listed twice")
        cleaned.append(tag)
    return cleaned


def _relative_path(value, field_name: str) -> str:
    """A path inside the build package, as given by Quay's clients (``/sub/Dockerfile`` or
    ``sub/Dockerfile``), normalized to ``sub/Dockerfile``; ``..`` is refused, not resolved."""
    if not isinstance(value, str):
        raise BuildError(f"{field_name} must be a string")
    if len(value) > MAX_PATH or "\x00" in value:
        raise BuildError(f"{field_name} is not a valid path")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BuildError(f"{field_name} must stay inside the build package: '..' is not allowed")
    return "/".join(parts)


def _inside(path: str, directory: str) -> bool:
    return directory == "" or path.startswith(directory + "/")


def _build_paths(subdirectory, dockerfile_path, context) -> tuple[str, str, str]:
    """(subdirectory, dockerfile_path, context) as stored, from Quay's three optional inputs:
    a Dockerfile path (its directory is the context unless one is given), or a subdirectory
    (the context, holding ``Dockerfile``), or a context alone."""
    given_context = _relative_path(context, "context") if context not in (None, "") else None
    if dockerfile_path not in (None, ""):
        dockerfile = _relative_path(dockerfile_path, "dockerfile_path")
        if not dockerfile:
            raise BuildError("dockerfile_path must name a file")
        ctx = given_context if given_context is not None else posixpath.dirname(dockerfile)
    elif subdirectory not in (None, ""):
        ctx = _relative_path(subdirectory, "subdirectory")
        dockerfile = posixpath.join(ctx, DOCKERFILE) if ctx else DOCKERFILE
        if given_context is not None and given_context != ctx:
            ctx = given_context
    else:
        ctx = given_context or ""
        dockerfile = posixpath.join(ctx, DOCKERFILE) if ctx else DOCKERFILE
    if not _inside(dockerfile, ctx):
        raise BuildError("The Dockerfile must be inside the build context")
    return ctx, dockerfile, ctx


def _administers(user: User, namespace: Namespace) -> bool:
    if user.is_superuser or namespace.user_id == user.pk:
        return True
    if namespace.kind != Namespace.Kind.ORGANIZATION:
        return False
    return Team.Role.ADMIN in account_selectors.organization_roles(user=user, organization=namespace)


def _pull_robot(value, *, repository: Repository, principal: Principal, vetted: bool = False) -> User | None:
    """The robot whose credentials pull private base images: a robot of the repository's
    namespace, chosen by someone who administers that namespace (as in Quay). ``vetted``: a
    trigger's robot, checked when an administrator activated the trigger, so whoever fires it
    (a push, a repository admin's Run Now) need not administer the namespace."""
    if value in (None, ""):
        return None
    robot = value if isinstance(value, User) else account_selectors.user_by_name(username=str(value))
    namespace = repository.namespace
    if robot is None or not robot.is_robot or not robot.username.startswith(f"{namespace.name}+"):
        raise BuildNotFound(f"No robot account {value} in the namespace {namespace.name}")
    user = principal.user
    if not vetted and principal.kind in ("user", "robot") and (user is None or not _administers(user, namespace)):
        raise BuildForbidden(f"Only administrators of {namespace.name} may use its robot accounts")
    return robot


def _upload_for(file_id, *, principal: Principal) -> BuildPackage:
    package = selectors.package_for_upload(package_uuid=file_id, user=principal.user)
    if package is None or package.uploaded is None:
        raise PackageError(f"File {file_id} could not be found or was not uploaded")
    return package


def build_create(
    *,
    repository: Repository,
    principal: Principal,
    package: BuildPackage | str | None = None,
    archive_url: str | None = None,
    subdirectory: str | None = None,
    dockerfile_path: str | None = None,
    context: str | None = None,
    tags: list[str] | None = None,
    pull_robot: User | str | None = None,
    ip: str | None = None,
    git: dict | None = None,
    trigger_uuid=None,
    trigger_metadata: dict | None = None,
    display_name: str | None = None,
    is_manual: bool | None = None,
) -> Build:
    """Queue a build of ``repository`` from an uploaded package (a BuildPackage or its
    ``file_id``), an ``archive_url``, or (triggers) a ``git`` ``{url, sha, ref}``.

    The caller checked that ``principal`` may write to the repository. Raises BuildsDisabled,
    BuildQueueFull (429), BuildError/PackageError (400), PackageTooLarge (413), BuildForbidden and
    BuildNotFound (pull robot). ``is_manual`` defaults to "no trigger"; a trigger's Run Now
    passes True (a person started it, as Quay records).
    """
    _require_enabled()
    sources = [bool(package), bool(archive_url), bool(git)]
    if sum(sources) != 1:
        raise BuildError("Give exactly one source: file_id or archive_url")
    clean_tags = _clean_tags(tags)
    subdir, dockerfile, ctx = _build_paths(subdirectory, dockerfile_path, context)
    robot = _pull_robot(pull_robot, repository=repository, principal=principal, vetted=trigger_uuid is not None)
    limit = selectors.build_settings().max_queued_per_namespace
    if selectors.queued_count(namespace_id=repository.namespace_id) >= limit:
        raise BuildQueueFull()  # early, before downloading anything; checked again under a lock

    spooled = None
    if isinstance(package, str):
        package = _upload_for(package, principal=principal)
    if archive_url:
        if not isinstance(archive_url, str):
            raise BuildError("archive_url must be a string")
        spooled = packages.spool_url(archive_url)
    try:
        mime_type = spooled.mime_type if spooled is not None else (package.mime_type if package else "")
        if (package or spooled) and mime_type not in packages.ARCHIVE_TYPES and (ctx or dockerfile != DOCKERFILE):
            raise BuildError(
                "A single Dockerfile is built as it is: subdirectory, context and dockerfile_path apply to archives"
            )
        return _build_store(
            repository=repository,
            principal=principal,
            package=package,
            spooled=spooled,
            archive_url=archive_url or "",
            subdirectory=subdir,
            dockerfile_path=dockerfile,
            context=ctx,
            tags=clean_tags,
            pull_robot=robot,
            ip=ip,
            git=git or {},
            trigger_uuid=trigger_uuid,
            trigger_metadata=trigger_metadata or {},
            display_name=display_name,
            is_manual=trigger_uuid is None if is_manual is None else is_manual,
            limit=limit,
        )
    finally:
        if spooled is not None:
            spooled.discard()


@transaction.atomic
def _build_store(
    *,
    repository: Repository,
    principal: Principal,
    package: BuildPackage | None,
    spooled: packages.Spooled | None,
    archive_url: str,
    subdirectory: str,
    dockerfile_path: str,
    context: str,
    tags: list[str],
    pull_robot: User | None,
    ip: str | None,
    git: dict,
    trigger_uuid,
    trigger_metadata: dict,
    display_name: str | None,
    is_manual: bool,
    limit: int,
) -> Build:
    # The namespace row is the lock that makes "count, then insert" one step per namespace on
    # PostgreSQL (SQLite has a single writer anyway).
    Namespace.objects.select_for_update(no_key=True).filter(pk=repository.namespace_id).first()
    if selectors.queued_count(namespace_id=repository.namespace_id) >= limit:
        raise BuildQueueFull()
    if package is not None:
        # One package, one build: the package is deleted when its build ends.
        package = BuildPackage.objects.select_for_update().get(pk=package.pk)
        if Build.objects.filter(package=package).exists():
            raise PackageError("This file was already used by a build; upload it again")
        source = Build.Source.ARCHIVE if package.mime_type in packages.ARCHIVE_TYPES else Build.Source.DOCKERFILE
        name = display_name or package.sha256[:7]
    elif spooled is not None:
        package = BuildPackage.objects.create(
            owner=principal.user,
            mime_type=spooled.mime_type,
            size=spooled.size,
            sha256=spooled.sha256,
            uploaded=timezone.now(),
        )
        packages.package_publish(spooled=spooled, package=package)
        source = Build.Source.URL
        name = display_name or archive_url
    else:
        source = Build.Source.GIT
        name = display_name or str(git.get("sha", ""))[:7]
    build = Build.objects.create(
        repository=repository,
        namespace_id_cached=repository.namespace_id,
        phase=Phase.WAITING,
        display_name=name[:255],
        source=source,
        package=package,
        archive_url=archive_url,
        subdirectory=subdirectory,
        dockerfile_path=dockerfile_path,
        context=context,
        tags=tags,
        pull_robot=pull_robot,
        started_by=principal.user,
        is_manual=is_manual,
        trigger_uuid=trigger_uuid,
        trigger_metadata=trigger_metadata,
        git=git,
    )
    manual_user = principal.user.username if principal.user is not None and is_manual else None
    build_event_emit(build=build, event=events.Event.BUILD_QUEUED, is_manual=is_manual, manual_user=manual_user)
    metadata = {
        "build_uuid": str(build.uuid),
        "repo": repository.name,
        "namespace": repository.namespace.name,
        "docker_tags": tags,
        "is_manual": is_manual,
        "manual_user": manual_user,
    }
    if archive_url:
        metadata["archive_url"] = archive_url
    elif package is not None:
        metadata["fileid"] = str(package.uuid)
    if trigger_uuid is not None:
        metadata["trigger_id"] = str(trigger_uuid)
    log_action(UsageLog.Kind.BUILD_DOCKERFILE, principal=principal, repository=repository, ip=ip, metadata=metadata)
    transaction.on_commit(_queue_dispatch)
    return build


def _queue_dispatch() -> None:
    from builds.tasks import build_dispatch  # the task module imports the manager, which imports us

    build_dispatch.delay()


def build_event_emit(*, build: Build, event: str, **extra) -> None:
    """Emit a build event with the fields the guide gives it (``extra`` adds the event's own:
    ``image_id``, ``manifest_digests``, ``error_message`` ...). Fields an event does not take
    are left out, so one call shape serves all five."""
    kind = events.get_event(event)
    data = {
        "build_id": str(build.uuid),
        "trigger_kind": trigger_selectors.trigger_service_of(build.trigger_uuid) if build.trigger_uuid else None,
        "trigger_id": str(build.trigger_uuid) if build.trigger_uuid else None,
        "docker_tags": list(build.tags),
        "trigger_metadata": build.trigger_metadata or {},
        "build_name": build.display_name,
        **extra,
    }
    event_emit(
        event=event,
        repository=build.repository,
        data={key: value for key, value in data.items() if key in kind.fields},
    )


# ---------------------------------------------------------------------------------------------
# Cancelling


def build_cancel(*, build: Build, principal: Principal, ip: str | None = None) -> Build:
    """Cancel a build that has not started pushing: it becomes ``cancelled`` at once, its job
    token stops working, and its worker (if it has one) is told to stop."""
    with transaction.atomic():
        locked = Build.objects.select_for_update(no_key=True).select_related("repository__namespace").get(pk=build.pk)
        if locked.phase not in CANCELLABLE_PHASES:
            raise BuildNotCancellable()
        token_id = locked.access_token_id
        worker_id = locked.worker_id
        now = timezone.now()
        locked.phase = Phase.CANCELLED
        locked.cancel_requested = True
        locked.completed = now
        locked.access_token = None
        seq = locked.log_count
        locked.log_count = seq + 1
        locked.save(update_fields=["phase", "cancel_requested", "completed", "access_token", "log_count"])
        BuildLogEntry.objects.create(
            build=locked,
            seq=seq,
            type=BuildLogEntry.Type.PHASE,
            message=Phase.CANCELLED.value,
            data={"datetime": now.isoformat(), "reason": f"cancelled by {principal.name or 'the registry'}"},
        )
        if token_id is not None:
            # Deleted, not expired: the worker's pushes and package download fail from now on.
            RepositoryAccessToken.objects.filter(pk=token_id).delete()
        build_event_emit(build=locked, event=events.Event.BUILD_CANCELLED)
        log_action(
            UsageLog.Kind.CANCEL_BUILD,
            principal=principal,
            repository=locked.repository,
            ip=ip,
            metadata={"build_uuid": str(locked.uuid), "repo": locked.repository.name},
        )
        # The build is over for the registry now: its package and log are done with (the
        # manager refuses anything the worker still sends), then the worker is told to stop.
        build_pk = locked.pk
        transaction.on_commit(lambda: _finish_cancelled(build_pk))
        if worker_id is not None:
            transaction.on_commit(lambda: _wake_worker(worker_id))
    return locked


def _wake_worker(worker_id: int) -> None:
    from builds.models import BuildWorker
    from builds.wakeup import wake_worker  # imported late: the wake-up module pulls in Channels

    worker = BuildWorker.objects.filter(pk=worker_id).first()
    if worker is not None:
        wake_worker(worker)


def _finish_cancelled(build_pk: int) -> None:
    from builds.wakeup import build_changed

    build = Build.objects.filter(pk=build_pk).first()
    if build is None:
        return
    build_changed(build.uuid)
    try:
        packages.package_release(build)
        packages.archive_logs(build)
    except Exception:  # the cancel stands; the periodic prune and the sweeper catch up on storage
        logger.exception("cleaning up after cancelling build %s failed", build.uuid)
