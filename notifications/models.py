"""Repository notifications: what to tell whom on which event, and the outbox of deliveries.

An event (a push, a build step, a vulnerability) is written as one ``NotificationEvent`` row and
one ``Delivery`` row per notification that wants it, in the transaction of the change it
reports: if that change rolls back, nothing is announced; if it commits, the deliveries exist
and will be sent even if every worker dies right after (the outbox). Workers claim a delivery
with a conditional UPDATE and a lease, so two workers never send the same attempt, and a lease
that expires (the worker was killed) makes the delivery claimable again with the same id.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Namespace
from registry.models import Repository


class Event(models.TextChoices):
    """The events of the guide's chapter 5 (Quay's names)."""

    REPO_PUSH = "repo_push", "Push to repository"
    BUILD_QUEUED = "build_queued", "Dockerfile build queued"
    BUILD_START = "build_start", "Dockerfile build started"
    BUILD_SUCCESS = "build_success", "Dockerfile build successfully completed"
    BUILD_FAILURE = "build_failure", "Dockerfile build failed"
    BUILD_CANCELLED = "build_cancelled", "Dockerfile build cancelled"
    VULNERABILITY_FOUND = "vulnerability_found", "Package vulnerability found"


class Method(models.TextChoices):
    """How a notification is delivered (Quay's names)."""

    QUAY_NOTIFICATION = "quay_notification", "In-app notification"
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook POST"
    SLACK = "slack", "Slack"
    FLOWDOCK = "flowdock", "Flowdock"
    HIPCHAT = "hipchat", "HipChat"


class RepositoryNotification(models.Model):
    """One rule of a repository: on ``event`` (filtered by ``event_config``), notify by ``method``.

    ``config`` holds the method's settings that may be shown; the secret ones (webhook signing
    secret, Slack URL, chat tokens) are encrypted together in ``secrets_encrypted``.
    ``number_of_failures`` counts consecutive failed attempts as Quay does (back to 0 on a
    success); while it is above 0 the endpoint is cooling down until ``retry_after``, and at
    NOTIFICATION_DISABLE_AFTER_FAILURES the rule is disabled, with a reason and an in-app notice to
    the repository's admins.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=32, choices=Event.choices)
    method = models.CharField(max_length=32, choices=Method.choices)
    title = models.CharField(max_length=255, blank=True)
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True)
    event_config = models.JSONField(default=dict, blank=True)
    number_of_failures = models.PositiveIntegerField(default=0)
    retry_after = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Every push looks up the rules of its repository for its event.
            models.Index(fields=["repository", "event"], name="notification_repo_event_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.title or self.method} on {self.event} of {self.repository_id}"


class NotificationEvent(models.Model):
    """One event as announced: its kind and the exact payload every delivery of it sends."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="notification_events")
    kind = models.CharField(max_length=32, choices=Event.choices)
    payload = models.JSONField()
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.kind} {self.uuid}"


class Delivery(models.Model):
    """The outbox: one event to one notification, with its retry state.

    ``uuid`` is the delivery id receivers see (``webhook-id``); it stays the same across retries
    and manual redeliveries so a receiver can drop duplicates. ``lease_token`` names the claim
    of the worker sending it now and ``lease_expires`` when that claim lapses.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        DELIVERED = "delivered"
        FAILED = "failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="deliveries")
    notification = models.ForeignKey(RepositoryNotification, on_delete=models.CASCADE, related_name="deliveries")
    is_test = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Retries stop NOTIFICATION_RETRY_PERIOD_SECONDS after this: the creation, or a manual redelivery.
    retry_window_start = models.DateTimeField(default=timezone.now)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            # The sweeper's scan: only unfinished deliveries, by when they are due. Finished ones
            # (nearly all rows) stay out of the index.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state__in=["pending", "sending"]),
                name="delivery_unfinished_idx",
            ),
            # A notification's delivery log, newest first.
            models.Index(fields=["notification", "-created"], name="delivery_log_idx"),
            # Pruning of old finished deliveries.
            models.Index(fields=["created"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.uuid} ({self.state})"


class DeliveryAttempt(models.Model):
    """One try at sending a delivery: when, how long, and what the other side answered."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    success = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"


class UserNotification(models.Model):
    """An in-app notice under a user's bell: an event of a repository notification (``kind`` is
    the event name) or a notice from the system (``notification_disabled``).

    One row per user, so each dismisses their own; ``organization`` is set when the notice was
    addressed to an organization as a whole. ``delivery`` makes a retried delivery idempotent.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="user_notifications")
    kind = models.CharField(max_length=64)
    organization = models.ForeignKey(Namespace, null=True, blank=True, on_delete=models.CASCADE)
    repository = models.ForeignKey(Repository, null=True, blank=True, on_delete=models.SET_NULL)
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL)
    metadata = models.JSONField(default=dict, blank=True)
    dismissed = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "user"], condition=Q(delivery__isnull=False), name="user_notification_once"
            )
        ]
        indexes = [
            # The bell: a user's undismissed notices, newest first, and their count.
            models.Index(fields=["user", "dismissed", "-created"], name="user_notification_bell_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"


class AuthorizedEmail(models.Model):
    """An e-mail address that may receive a repository's notifications once ``confirmed``.

    The confirmation code travels only in the e-mail; only its SHA-256 is kept.
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="authorized_emails")
    email = models.EmailField(max_length=254)
    code_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    confirmed = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # When a confirmation was last asked for: asking again sooner sends no second e-mail.
    requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "email"], name="authorized_email_unique")]

    def __str__(self) -> str:
        return f"{self.email} for {self.repository_id}"
