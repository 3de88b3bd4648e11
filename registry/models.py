import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Namespace, Team


class Role(models.TextChoices):
    """Repository roles, ordered: each includes the ones before it."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    ADMIN = "admin", "Admin"


ROLE_RANK = {None: 0, Role.READ: 1, Role.WRITE: 2, Role.ADMIN: 3}


class Repository(models.Model):
    """A named collection of manifests and tags under a namespace.

    ``name`` is everything after the namespace and may contain ``/``. Application repositories
    hold OCI artifacts only (Helm charts and the like); image repositories hold both.
    """

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        PRIVATE = "private", "Private"

    class Kind(models.TextChoices):
        IMAGE = "image", "Container image"
        APPLICATION = "application", "Application"

    class State(models.TextChoices):
        NORMAL = "normal", "Normal"
        READ_ONLY = "read_only", "Read-only"

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="repositories")
    name = models.CharField(max_length=255)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.IMAGE)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.NORMAL)
    created = models.DateTimeField(auto_now_add=True)
    last_modified = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "repositories"
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="repository_unique_name")]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.namespace.name}/{self.name}"

    @property
    def is_public(self) -> bool:
        return self.visibility == self.Visibility.PUBLIC


class RepositoryPermission(models.Model):
    """A role on one repository for a user, a robot (a user too) or a team."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="permissions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE)
    role = models.CharField(max_length=5, choices=Role.choices)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, team__isnull=True) | models.Q(user__isnull=True, team__isnull=False)
                ),
                name="permission_user_xor_team",
            ),
            models.UniqueConstraint(fields=["repository", "user"], name="permission_unique_user"),
            models.UniqueConstraint(fields=["repository", "team"], name="permission_unique_team"),
        ]

    def __str__(self) -> str:
        who = self.user.username if self.user_id else f"team {self.team.name}"
        return f"{who}: {self.role} on {self.repository}"


class RepositoryAccessToken(models.Model):
    """A repository-scoped credential used as ``$token`` (triggers, builders, automation).

    Stored hashed; the prefix finds the row, the SHA-256 of the whole code proves it.
    """

    PREFIX_LENGTH = 12

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="access_tokens")
    friendly_name = models.CharField(max_length=255, blank=True)
    code_prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    code_hash = models.CharField(max_length=64)
    role = models.CharField(max_length=5, choices=Role.choices)
    created = models.DateTimeField(auto_now_add=True)
    expiration = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.friendly_name or self.code_prefix} on {self.repository}"


class Blob(models.Model):
    """Content-addressed bytes (a layer or a config). The bytes live in storage, never here."""

    digest = models.CharField(max_length=200, unique=True)
    size = models.BigIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.digest


class RepositoryBlob(models.Model):
    """Links a blob to a repository: a blob is visible only through repositories that link it.

    ``linked`` is the grace-period clock for garbage collection: a blob linked recently is never
    collected, even before a manifest refers to it (the push is still going on).
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="blob_links")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="repository_links")
    linked = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "blob"], name="repository_blob_unique")]


class Manifest(models.Model):
    """An image manifest, index or artifact manifest, stored byte-exact.

    ``digest`` is the SHA-256 of exactly ``raw``; ``subject_digest`` feeds the referrers API;
    ``artifact_type`` is the manifest's ``artifactType`` or, failing that, its config media type.
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="manifests")
    digest = models.CharField(max_length=200)
    media_type = models.CharField(max_length=255)
    raw = models.BinaryField()
    size = models.PositiveIntegerField()
    config_media_type = models.CharField(max_length=255, blank=True)
    config_digest = models.CharField(max_length=200, blank=True)
    artifact_type = models.CharField(max_length=255, blank=True)
    subject_digest = models.CharField(max_length=200, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    # Sum of the layer sizes (or of the children's for an index), for listings.
    layers_size = models.BigIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    blobs = models.ManyToManyField(Blob, through="ManifestBlob", related_name="manifests")
    children = models.ManyToManyField("self", through="ManifestChild", symmetrical=False, related_name="parents")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "digest"], name="manifest_unique_digest")]
        indexes = [
            # Referrers lookups scan by subject within one repository.
            models.Index(fields=["repository", "subject_digest"], name="manifest_subject_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def is_index(self) -> bool:
        return self.media_type in (
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )


class ManifestBlob(models.Model):
    """A blob (config or layer) that a manifest refers to."""

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "blob"], name="manifest_blob_unique")]


class ManifestChild(models.Model):
    """A child manifest of an index (one per platform entry)."""

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="child_links")
    child = models.ForeignKey(Manifest, on_delete=models.PROTECT, related_name="parent_links")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "child"], name="manifest_child_unique")]


class Tag(models.Model):
    """One lifetime of a tag name pointing at one manifest: tag history is every row of a name.

    The alive row has ``lifetime_end`` NULL; moving a tag ends it and inserts a new row, so the
    history exists from the first push. ``hidden`` rows are temporary tags that keep a manifest
    pushed by digest alive during a push; they expire and are never listed.
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=255)
    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="tags")
    lifetime_start = models.DateTimeField()
    lifetime_end = models.DateTimeField(null=True, blank=True)
    expiration = models.DateTimeField(null=True, blank=True)
    hidden = models.BooleanField(default=False)
    reversion = models.BooleanField(default=False)
    # Ended outside the time machine by an admin: never restorable, collectable at once.
    purged = models.BooleanField(default=False)

    class Meta:
        constraints = [
            # At most one alive row per name: the database itself serializes concurrent moves.
            models.UniqueConstraint(
                fields=["repository", "name"],
                condition=models.Q(lifetime_end__isnull=True),
                name="tag_one_alive_per_name",
            )
        ]
        indexes = [
            models.Index(fields=["repository", "name", "lifetime_start"], name="tag_history_idx"),
            models.Index(fields=["manifest", "lifetime_end"], name="tag_manifest_alive_idx"),
            # The REST tag listing pages through a repository's visible history newest first, and
            # through its alive tags: each page is read in order from one of these, never sorted,
            # however deep (a repository may hold 100,000 history rows).
            models.Index(
                fields=["repository", "-lifetime_start", "name", "-id"],
                condition=models.Q(hidden=False, purged=False),
                name="tag_listing_idx",
            ),
            # With the expiration, so that telling alive from expired needs no row either.
            models.Index(
                fields=["repository", "-lifetime_start", "name", "-id", "expiration"],
                condition=models.Q(hidden=False, purged=False, lifetime_end__isnull=True),
                name="tag_alive_listing_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.repository}:{self.name}"


class UploadSession(models.Model):
    """A blob upload in progress: ``offset`` bytes are committed in storage under the uuid.

    ``owner`` is the identity key of the principal that started it; nobody else may touch it.
    """

    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="uploads")
    owner = models.CharField(max_length=255)
    offset = models.BigIntegerField(default=0)
    # Storage parts written so far, for backends that keep one object per chunk (S3).
    parts = models.JSONField(default=list, blank=True)
    started = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()

    def __str__(self) -> str:
        return f"upload {self.uuid} to {self.repository}"


class UsageLog(models.Model):
    """One audited action: who did what to which repository, from where."""

    class Kind(models.TextChoices):
        CREATE_REPO = "create_repo"
        PUSH_REPO = "push_repo"
        PULL_REPO = "pull_repo"
        DELETE_REPO = "delete_repo"
        CREATE_TAG = "create_tag"
        MOVE_TAG = "move_tag"
        DELETE_TAG = "delete_tag"
        REVERT_TAG = "revert_tag"
        DELETE_MANIFEST = "delete_manifest"
        DELETE_BLOB = "delete_blob"
        CHANGE_TAG_EXPIRATION = "change_tag_expiration"
        PURGE_TAG = "purge_tag"
        # Quay's kinds for changes made through /api/v1 (repositories, accounts, organizations).
        SET_REPO_DESCRIPTION = "set_repo_description"
        CHANGE_REPO_VISIBILITY = "change_repo_visibility"
        CHANGE_REPO_PERMISSION = "change_repo_permission"
        DELETE_REPO_PERMISSION = "delete_repo_permission"
        CREATE_ROBOT = "create_robot"
        DELETE_ROBOT = "delete_robot"
        REGENERATE_ROBOT_TOKEN = "regenerate_robot_token"
        ORG_CREATE = "org_create"
        ORG_DELETE = "org_delete"
        ORG_CHANGE_EMAIL = "org_change_email"
        ORG_CREATE_TEAM = "org_create_team"
        ORG_DELETE_TEAM = "org_delete_team"
        ORG_SET_TEAM_DESCRIPTION = "org_set_team_description"
        ORG_SET_TEAM_ROLE = "org_set_team_role"
        ORG_ADD_TEAM_MEMBER = "org_add_team_member"
        ORG_REMOVE_TEAM_MEMBER = "org_remove_team_member"
        CREATE_APPLICATION = "create_application"
        UPDATE_APPLICATION = "update_application"
        DELETE_APPLICATION = "delete_application"
        RESET_APPLICATION_CLIENT_SECRET = "reset_application_client_secret"
        CREATE_APP_SPECIFIC_TOKEN = "create_app_specific_token"
        REVOKE_APP_SPECIFIC_TOKEN = "revoke_app_specific_token"
        USER_CREATE = "user_create"
        USER_DELETE = "user_delete"
        USER_DISABLE = "user_disable"
        USER_ENABLE = "user_enable"
        USER_CHANGE_EMAIL = "user_change_email"
        USER_CHANGE_PASSWORD = "user_change_password"
        # Repository notifications (notifications.services), Quay's names.
        ADD_REPO_NOTIFICATION = "add_repo_notification"
        DELETE_REPO_NOTIFICATION = "delete_repo_notification"
        RESET_REPO_NOTIFICATION = "reset_repo_notification"
        # Dockerfile builds (builds.services).
        BUILD_DOCKERFILE = "build_dockerfile"
        CANCEL_BUILD = "cancel_build"
        # Build triggers (triggers.services).
        SETUP_REPO_TRIGGER = "setup_repo_trigger"
        TOGGLE_REPO_TRIGGER = "toggle_repo_trigger"
        DELETE_REPO_TRIGGER = "delete_repo_trigger"

    kind = models.CharField(max_length=64, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=255, blank=True)
    namespace = models.ForeignKey(Namespace, null=True, blank=True, on_delete=models.CASCADE)
    repository = models.ForeignKey(Repository, null=True, blank=True, on_delete=models.SET_NULL)
    ip = models.GenericIPAddressField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # A default, not auto_now_add: batched pull entries keep the time of the pull.
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["repository", "created"], name="log_repo_time_idx"),
            models.Index(fields=["namespace", "created"], name="log_ns_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor_name or 'anonymous'}"


class Star(models.Model):
    """A user's star on a repository (Quay's starred repositories)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stars")
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="stars")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "repository"], name="star_unique")]

    def __str__(self) -> str:
        return f"{self.user.username} starred {self.repository}"


class GarbageCollectionRun(models.Model):
    """One pass of garbage collection: what it removed and how many stored bytes it freed.

    ``repository`` is set when the pass was limited to one repository (a repository deletion).
    """

    class Trigger(models.TextChoices):
        PERIODIC = "periodic"
        COMMAND = "command"
        ADMIN = "admin"
        REPOSITORY_DELETE = "repository_delete"

    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    repository = models.ForeignKey(Repository, null=True, blank=True, on_delete=models.SET_NULL)
    started = models.DateTimeField(default=timezone.now, db_index=True)
    finished = models.DateTimeField(null=True, blank=True)
    tags_expired = models.PositiveIntegerField(default=0)
    tags_dropped = models.PositiveIntegerField(default=0)
    manifests_deleted = models.PositiveIntegerField(default=0)
    blob_links_deleted = models.PositiveIntegerField(default=0)
    blobs_deleted = models.PositiveIntegerField(default=0)
    bytes_freed = models.BigIntegerField(default=0)
    uploads_cleaned = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"GC {self.trigger} at {self.started:%Y-%m-%d %H:%M:%S}"
