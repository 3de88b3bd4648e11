"""Dockerfile builds: what was asked, who builds it, what it printed and how it ended.

The lifecycle (docs/BUILDS.md has the whole protocol): a Build is created ``waiting`` with its
source stored as a BuildPackage (or a git reference from a trigger); the dispatcher assigns it to
an idle BuildWorker and hands that worker a job token (a short-lived RepositoryAccessToken with
write on this repository only); the worker reports phases, log lines and a result over its
websocket. The database row is the only state: a restarted manager, dispatcher or worker finds
everything here.
"""

import uuid

from django.conf import settings
from django.db import models

from registry.models import Repository, RepositoryAccessToken


class BuildSettings(models.Model):
    """The superuser's build switches (one row, pk=1): on/off, worker secret, queue limit.

    ``FEATURE_BUILD_SUPPORT`` in the environment, when set, wins over ``enabled`` (Quay's name
    for the same switch), so an operator can pin it in deployment config.
    """

    enabled = models.BooleanField(default=False, help_text="Enable Dockerfile Build")
    # The secret workers present to register, Fernet-encrypted (accounts.crypto): `serve` reads it
    # back to start the local worker; compared in constant time.
    registration_secret_encrypted = models.TextField(blank=True)
    max_queued_per_namespace = models.PositiveIntegerField(
        default=25, help_text="Builds a namespace may have waiting or running at once."
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "build settings"
        verbose_name_plural = "build settings"

    def __str__(self) -> str:
        return "Build settings"


class BuildPackage(models.Model):
    """An uploaded build source (Quay's filedrop): a Dockerfile or a tar/tar.gz/zip context.

    Created by ``POST /api/v1/filedrop/``, filled by a PUT to its upload URL, consumed by one
    build; the bytes live in the build-package storage under ``storage_name``.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    mime_type = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    uploaded = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.uuid)

    @property
    def storage_name(self) -> str:
        return f"build-packages/{self.uuid}"


class BuildWorker(models.Model):
    """A build worker program connected over the builder websocket (one row per connection)."""

    class State(models.TextChoices):
        IDLE = "idle", "Idle"
        BUSY = "busy", "Building"
        OFFLINE = "offline", "Offline"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    host = models.CharField(max_length=255, blank=True)
    version = models.CharField(max_length=64, blank=True)
    capacity = models.PositiveSmallIntegerField(default=1)
    state = models.CharField(max_length=8, choices=State.choices, default=State.IDLE)
    # Where the manager reaches this worker's consumer (a Channels channel name).
    channel_name = models.CharField(max_length=255, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    connected = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    disconnected = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state"], name="buildworker_state")]

    def __str__(self) -> str:
        return f"{self.host or 'worker'} ({self.uuid})"


class Phase(models.TextChoices):
    """Phases as users see them (Quay's names); the last five are final."""

    WAITING = "waiting"
    BUILD_SCHEDULED = "build-scheduled"
    UNPACKING = "unpacking"
    PULLING = "pulling"
    BUILDING = "building"
    PUSHING = "pushing"
    COMPLETE = "complete"
    ERROR = "error"
    INTERNAL_ERROR = "internalerror"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINAL_PHASES = frozenset({Phase.COMPLETE, Phase.ERROR, Phase.INTERNAL_ERROR, Phase.CANCELLED, Phase.EXPIRED})
# Phases a worker reports while it has the job, in the order they normally come.
WORKER_PHASES = (Phase.UNPACKING, Phase.PULLING, Phase.BUILDING, Phase.PUSHING)


class Build(models.Model):
    """One requested image build of a repository, from queueing to its outcome."""

    class Source(models.TextChoices):
        DOCKERFILE = "dockerfile", "Dockerfile"
        ARCHIVE = "archive", "Archive"
        URL = "url", "URL"
        GIT = "git", "Git commit"

    class ErrorKind(models.TextChoices):
        PACKAGE = "package", "Build package"
        GIT = "git", "Git checkout"
        PULL = "pull", "Pull base image"
        DOCKERFILE = "dockerfile", "Dockerfile"
        BUILD = "build", "Build"
        PUSH = "push", "Push"
        INTERNAL = "internal", "Internal"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="builds")
    # Denormalized for the per-namespace queue limit and FIFO dispatch without a join.
    namespace_id_cached = models.BigIntegerField(db_index=True)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.WAITING)
    display_name = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    package = models.ForeignKey(BuildPackage, null=True, blank=True, on_delete=models.SET_NULL)
    archive_url = models.URLField(max_length=2048, blank=True)
    subdirectory = models.CharField(max_length=1024, blank=True)
    dockerfile_path = models.CharField(max_length=1024, default="Dockerfile")
    context = models.CharField(max_length=1024, blank=True)
    tags = models.JSONField(default=list)
    pull_robot = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Started by a person (the form, the API, a trigger's Run Now) rather than by a git push.
    is_manual = models.BooleanField(default=True)
    # Set by triggers (#9): which trigger, and what it saw (commit, ref, commit_info ...).
    trigger_uuid = models.UUIDField(null=True, blank=True)
    trigger_metadata = models.JSONField(default=dict, blank=True)
    # Git source for trigger builds: {"url", "sha", "ref"}; the SSH key stays with the trigger.
    git = models.JSONField(default=dict, blank=True)

    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)

    worker = models.ForeignKey(BuildWorker, null=True, blank=True, on_delete=models.SET_NULL, related_name="builds")
    # How many times a worker was handed this build; a build requeued too often ends internalerror.
    attempts = models.PositiveSmallIntegerField(default=0)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    access_token = models.ForeignKey(
        RepositoryAccessToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancel_requested = models.BooleanField(default=False)
    error_kind = models.CharField(max_length=12, choices=ErrorKind.choices, blank=True)
    error_message = models.TextField(blank=True)
    image_id = models.CharField(max_length=200, blank=True)
    manifest_digests = models.JSONField(default=list, blank=True)
    # Quay's free-form ``status`` object (current command, pull/push progress ...).
    status = models.JSONField(default=dict, blank=True)
    log_count = models.PositiveIntegerField(default=0)
    # Set when the log rows were moved to storage at the end of the build.
    logs_archived = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["repository", "-created"], name="build_repo_created"),
            models.Index(fields=["phase", "created"], name="build_phase_created"),
        ]

    def __str__(self) -> str:
        return f"{self.repository} build {self.uuid}"

    @property
    def is_final(self) -> bool:
        return self.phase in FINAL_PHASES


class BuildLogEntry(models.Model):
    """One entry of a build's log, in order: ``{message, type, data}`` as the API serves it."""

    class Type(models.TextChoices):
        COMMAND = "command"
        PHASE = "phase"
        ERROR = "error"
        OUTPUT = ""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="log_entries")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=8, choices=Type.choices, blank=True)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["build", "seq"], name="buildlog_unique_seq")]

    def __str__(self) -> str:
        return f"{self.build_id}#{self.seq}"
