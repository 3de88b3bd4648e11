"""Build triggers: a git repository whose pushes build this repository's image.

A trigger belongs to one repository and one git service (a custom git server, or GitHub,
GitLab, Bitbucket). Once activated it holds what the builder needs to clone (the SSH key pair:
the public half is the deploy key shown to the admin, the private half is encrypted and handed
only to the build's worker) and what a push webhook must present (a secret, compared by hash).
"""

import uuid

from django.conf import settings
from django.db import models

from registry.models import Repository


class BuildTrigger(models.Model):
    """One build trigger of a repository; ``config`` is Quay's trigger config (see services).

    A trigger is *active* once activated (``activated`` set): it has its key pair and webhook
    secret. ``enabled`` is the admin's switch, also turned off by the auto-disable after
    successive failed builds (``disabled_reason`` says which).
    """

    class Service(models.TextChoices):
        CUSTOM_GIT = "custom-git", "Custom Git"
        GITHUB = "github", "GitHub"
        GITLAB = "gitlab", "GitLab"
        BITBUCKET = "bitbucket", "Bitbucket"

    class DisabledReason(models.TextChoices):
        # Quay's names, which its UI and API clients test for.
        USER_TOGGLED = "user_toggled", "Disabled by a user"
        BUILD_FAILURES = "successive_build_failures", "Successive build failures"
        INTERNAL_ERRORS = "successive_build_internal_errors", "Successive internal errors"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="build_triggers")
    service = models.CharField(max_length=16, choices=Service.choices)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=40, choices=DisabledReason.choices, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Who set the trigger up (for OAuth services: whose account the provider token belongs to).
    connected_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pull_robot = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    config = models.JSONField(default=dict, blank=True)
    activated = models.DateTimeField(null=True, blank=True)
    # OpenSSH one-line public key: the deploy key the git server must accept.
    public_key = models.TextField(blank=True)
    # The OpenSSH private key, Fernet-encrypted (accounts.crypto); only a build's job carries it.
    private_key_encrypted = models.TextField(blank=True)
    # The webhook secret: its SHA-256 proves a call; the encrypted copy lets View Credentials show
    # the webhook URL again at any time, as the guide promises (section 3.2).
    webhook_secret_hash = models.CharField(max_length=64, blank=True)
    webhook_secret_encrypted = models.TextField(blank=True)
    # The provider's OAuth token for GitHub/GitLab/Bitbucket triggers, Fernet-encrypted.
    auth_token_encrypted = models.TextField(blank=True)
    # GitLab and Bitbucket tokens expire (GitHub OAuth app tokens do not): the refresh token,
    # encrypted, and when the access token stops working.
    auth_refresh_token_encrypted = models.TextField(blank=True)
    auth_token_expires = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the nonce inside the signed OAuth ``state`` of the latest connect start: a
    # callback must carry it, and it is cleared when used, so a state works once.
    connect_nonce_hash = models.CharField(max_length=64, blank=True)
    # What activation created at the provider (``deploy_key_id``, ``hook_id``) and learned about
    # the source (``git_url``, ``html_url``, ``default_branch``, ``project_id``). Written as soon
    # as each remote object exists, so a failure half-way still knows what to remove.
    remote = models.JSONField(default=dict, blank=True)
    successive_failure_count = models.PositiveIntegerField(default=0)
    successive_internal_error_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["repository", "created"], name="trigger_repo_created")]

    def __str__(self) -> str:
        return f"{self.service} trigger {self.uuid} of {self.repository}"

    @property
    def is_active(self) -> bool:
        return self.activated is not None

    @property
    def build_source(self) -> str | None:
        return self.config.get("build_source") or None


class ProviderApp(models.Model):
    """The OAuth application of one git provider (GitHub, GitLab, Bitbucket), set by a superuser.

    ``web_url`` is where users sign in (``https://github.com``, a GitHub Enterprise or self-hosted
    GitLab address); ``api_url`` is the REST API base, derived from ``web_url`` when blank. The
    client secret is stored Fernet-encrypted and never shown again.
    """

    class Service(models.TextChoices):
        GITHUB = "github", "GitHub"
        GITLAB = "gitlab", "GitLab"
        BITBUCKET = "bitbucket", "Bitbucket"

    service = models.CharField(max_length=16, choices=Service.choices, unique=True)
    enabled = models.BooleanField(default=False)
    client_id = models.CharField(max_length=255, blank=True)
    client_secret_encrypted = models.TextField(blank=True)
    web_url = models.URLField(max_length=512, blank=True, help_text="Blank: the public service")
    api_url = models.URLField(max_length=512, blank=True, help_text="Blank: derived from the web URL")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "git provider OAuth application"

    def __str__(self) -> str:
        return f"{self.get_service_display()} OAuth application"


class TriggerDelivery(models.Model):
    """A provider webhook delivery already handled for a trigger (replay protection).

    The provider's delivery id (GitHub ``X-GitHub-Delivery``, GitLab ``X-Gitlab-Event-UUID``,
    Bitbucket ``X-Request-UUID``) is unique per trigger; rows older than
    ``TRIGGER_DELIVERY_RETENTION_DAYS`` are pruned as new ones arrive.
    """

    trigger = models.ForeignKey(BuildTrigger, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.CharField(max_length=128)
    event = models.CharField(max_length=64, blank=True)
    build_uuid = models.UUIDField(null=True, blank=True)
    received = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trigger", "delivery_id"], name="trigger_delivery_unique")]
        indexes = [models.Index(fields=["trigger", "received"], name="trigger_delivery_received")]

    def __str__(self) -> str:
        return f"delivery {self.delivery_id} of {self.trigger_id}"
