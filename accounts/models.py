import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who signs in, or a robot account (``is_robot``) named ``<namespace>+<short>``.

    Robots are users, as in Quay, so that repository permissions and team membership need one
    foreign key; a robot never has a usable password and authenticates only with its token.
    """

    is_robot = models.BooleanField(default=False, db_index=True)

    class Meta:
        db_table = "accounts_user"


class Namespace(models.Model):
    """The first path component of a repository: one per user, or an organization.

    ``time_machine_seconds`` is how long ended tags keep their manifests alive (Quay's window).
    """

    class Kind(models.TextChoices):
        USER = "user", "User"
        ORGANIZATION = "org", "Organization"

    name = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    user = models.OneToOneField(User, null=True, blank=True, on_delete=models.CASCADE, related_name="namespace")
    email = models.EmailField(blank=True)
    time_machine_seconds = models.PositiveIntegerField(default=14 * 24 * 3600)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind="user", user__isnull=False) | models.Q(kind="org", user__isnull=True)),
                name="namespace_user_iff_user_kind",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_organization(self) -> bool:
        return self.kind == self.Kind.ORGANIZATION


class Team(models.Model):
    """A group of an organization's members with one role over the organization.

    ``admin`` administers the organization, ``creator`` may create repositories in it,
    ``member`` only has what repository permissions give the team.
    """

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        CREATOR = "creator", "Creator"
        MEMBER = "member", "Member"

    organization = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=255)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(User, through="TeamMember", related_name="teams")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="team_unique_name")]

    def __str__(self) -> str:
        return f"{self.organization.name}/{self.name}"


class TeamMember(models.Model):
    """Membership of a user or robot in a team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE)
    user = models.ForeignKey(User, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="team_member_unique")]

    def __str__(self) -> str:
        return f"{self.user.username} in {self.team}"


class Robot(models.Model):
    """The robot-specific half of a robot user: owner namespace, description and token.

    The token is stored encrypted (not hashed) because Quay shows it again to admins.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="robot")
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="robots")
    short_name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    # Free-form JSON a robot's creator attaches (Quay's ``unstructured_metadata``).
    unstructured_metadata = models.JSONField(default=dict, blank=True)
    token_encrypted = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "short_name"], name="robot_unique_short_name")]

    def __str__(self) -> str:
        return self.user.username


class AppToken(models.Model):
    """An app-specific token: a password replacement for CLI use, shown once, stored hashed.

    The first ``PREFIX_LENGTH`` characters are kept in clear to find the row without a scan;
    the whole token is compared by its SHA-256 (tokens are random, so no slow hash is needed).
    """

    PREFIX_LENGTH = 12

    # Public handle in Quay's /user/apptoken/<uuid> paths; never the secret.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="app_tokens")
    title = models.CharField(max_length=255)
    token_prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    token_hash = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    last_accessed = models.DateTimeField(null=True, blank=True)
    expiration = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.title} ({self.user.username})"


class OAuthApplication(models.Model):
    """An OAuth application registered by an organization; tokens issued through it act for
    the user who authorized them, limited to the scopes granted."""

    organization = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="oauth_applications")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    application_uri = models.URLField(blank=True)
    redirect_uri = models.URLField(blank=True)
    avatar_email = models.EmailField(blank=True)
    client_id = models.CharField(max_length=40, unique=True)
    # Encrypted, not hashed: Quay shows the client secret to organization admins.
    client_secret_encrypted = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.organization.name})"


class OAuthAccessToken(models.Model):
    """A bearer token for the REST API (and ``$oauthtoken`` logins) with Quay scopes.

    Stored hashed: the prefix finds the row, the SHA-256 of the whole token proves it.
    """

    PREFIX_LENGTH = 12

    # Null for the token `user/initialize` hands the first user (there is no organization yet).
    application = models.ForeignKey(
        OAuthApplication, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens"
    )
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="oauth_tokens")
    scopes = models.CharField(max_length=255)
    token_prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    token_hash = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        via = self.application.name if self.application_id else "user/initialize"
        return f"token of {self.user.username} via {via}"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())
