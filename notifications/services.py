"""Writes of the notifications app: emitting events, managing rules, delivering, the bell.

Emitting (``event_emit``) is what other code calls, inside its own transaction: the event and
one delivery per interested rule are rows written with the change they report (the outbox), and
tasks are queued only once that transaction commits. Delivering (``delivery_attempt``) claims a
delivery with one conditional UPDATE that also takes a lease, sends one attempt through the
rule's method, and records the outcome. A worker goes on with whatever else is due
(``deliveries_drain``), and the sweeper (``delivery_sweep``, run by celery beat) wakes one when
anything is due that no task is coming for (long retries, lost tasks, lapsed leases of killed
workers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import crypto
from notifications import events, selectors
from notifications.methods import METHODS, get_method
from notifications.methods.base import ConfigError, Context, DeliveryError
from notifications.models import (
    AuthorizedEmail,
    Delivery,
    DeliveryAttempt,
    NotificationEvent,
    RepositoryNotification,
    UserNotification,
)
from observability import metrics
from quay_site.faults import pause
from registry.models import Repository, UsageLog
from registry.permissions import Principal
from registry.usage import log_action

log = logging.getLogger(__name__)

ERROR_CHARS = 2000
NOTICE_DISABLED = "notification_disabled"
TITLE_MAX = 255
AUTHORIZATION_RESEND_INTERVAL = timedelta(minutes=1)


class NotificationError(ValueError):
    """A request the notification rules cannot take; the message is shown to the caller.

    ``part`` names what was wrong (``event``, ``method``, ``config``, ``event_config``, ``title``)
    so a form can show the message next to the input it is about."""

    def __init__(self, message: str, *, part: str = ""):
        super().__init__(message)
        self.part = part


# ---------------------------------------------------------------------------------------------
# Emitting


def event_emit(*, event: str, repository: Repository, data: dict) -> NotificationEvent | None:
    """Announce ``event`` of ``repository`` to every enabled rule listening to it.

    ``data`` holds the event's own fields (``updated_tags`` for ``repo_push``, the build fields,
    ``tags`` and ``vulnerability``; see notifications/events.py); the common fields are added
    here. Call it inside the transaction of the change it reports. Returns the recorded event,
    or None when no rule wanted it (then nothing is written).
    """
    kind = events.get_event(event)
    own = kind.own_fields(data)  # a caller's mistake shows even where nobody listens
    rules = selectors.notifications_listening(repository=repository, event=event)
    if not rules:
        return None  # the common case on a push: one indexed query, nothing else
    payload = kind.complete(namespace=repository.namespace.name, name=repository.name, own=own)
    rules = [rule for rule in rules if kind.accepts(payload, rule.event_config)]
    if not rules:
        return None
    now = timezone.now()
    with transaction.atomic():
        record = NotificationEvent.objects.create(repository=repository, kind=event, payload=payload, created=now)
        Delivery.objects.bulk_create(
            [
                Delivery(
                    event=record,
                    notification=rule,
                    next_attempt_at=now,
                    retry_window_start=now,
                    created=now,
                )
                for rule in rules
            ]
        )
        # One task for the event, not one per delivery: a push fanned out to many rules is one
        # broker message (the embedded default's broker hands out about one per second per worker).
        record_id = record.pk
        transaction.on_commit(lambda: _queue_event(record_id))
    return record


def _queue_event(event_id: int) -> None:
    from notifications import tasks

    try:
        tasks.deliver_event.delay(event_id)
    except Exception:
        log.warning("could not queue notification event %s; the sweeper will", event_id, exc_info=True)


def _queue_delivery(delivery_id: int, countdown: float | None = None) -> None:
    """Queue a task for one delivery. A broker that is down loses nothing: the row is there and
    the sweeper finds it."""
    from notifications import tasks  # tasks imports this module

    try:
        tasks.deliver.apply_async((delivery_id,), countdown=countdown)
    except Exception:
        log.warning("could not queue notification delivery %s; the sweeper will", delivery_id, exc_info=True)


def _queue_drain() -> None:
    """Queue one task that sends whatever is due (see ``deliveries_drain``)."""
    from notifications import tasks

    try:
        tasks.drain.delay()
    except Exception:
        log.warning("could not queue a notification drain; the sweeper will", exc_info=True)


def _queue_on_commit(delivery_id: int, countdown: float | None = None) -> None:
    transaction.on_commit(lambda: _queue_delivery(delivery_id, countdown))


# ---------------------------------------------------------------------------------------------
# Rules


def notification_config(notification: RepositoryNotification) -> dict:
    """The rule's whole method config, secrets decrypted."""
    config = dict(notification.config)
    if notification.secrets_encrypted:
        config.update(json.loads(crypto.decrypt(notification.secrets_encrypted)))
    return config


def notification_public_config(notification: RepositoryNotification) -> dict:
    return get_method(notification.method).public(notification_config(notification))


def _split_secrets(method_name: str, config: dict) -> tuple[dict, str]:
    method = get_method(method_name)
    secrets = {key: config[key] for key in method.secret_fields if key in config}
    public = {key: value for key, value in config.items() if key not in method.secret_fields}
    return public, crypto.encrypt(json.dumps(secrets)) if secrets else ""


def notification_create(
    *,
    repository: Repository,
    event: str,
    method: str,
    config: dict,
    event_config: dict | None,
    title: str | None,
    principal: Principal,
    ip: str | None,
) -> tuple[RepositoryNotification, dict]:
    """Add a rule; returns it and its config as shown once at creation (secrets included)."""
    if event not in events.EVENTS:
        raise NotificationError(f"Unknown event {event!r}; one of {', '.join(events.EVENTS)}", part="event")
    if method not in METHODS:
        raise NotificationError(f"Unknown method {method!r}; one of {', '.join(METHODS)}", part="method")
    if not isinstance(config, dict):
        raise NotificationError("config must be an object", part="config")
    if event_config is not None and not isinstance(event_config, dict):
        raise NotificationError("eventConfig must be an object", part="event_config")
    title = (title or "").strip()
    if len(title) > TITLE_MAX:
        raise NotificationError(f"title is longer than {TITLE_MAX} characters", part="title")
    try:
        cleaned_event_config = events.get_event(event).clean_config(event_config or {})
    except events.EventConfigError as exc:
        raise NotificationError(str(exc), part="event_config") from None
    try:
        cleaned = get_method(method).clean(repository=repository, config=config)
    except ConfigError as exc:
        raise NotificationError(str(exc), part="config") from None
    public, encrypted = _split_secrets(method, cleaned)
    with transaction.atomic():
        notification = RepositoryNotification.objects.create(
            repository=repository,
            event=event,
            method=method,
            title=title,
            config=public,
            secrets_encrypted=encrypted,
            event_config=cleaned_event_config,
        )
        _log(notification, UsageLog.Kind.ADD_REPO_NOTIFICATION, principal, ip)
    return notification, cleaned


def notification_delete(*, notification: RepositoryNotification, principal: Principal, ip: str | None) -> None:
    """Remove a rule with its pending deliveries and its log."""
    with transaction.atomic():
        _log(notification, UsageLog.Kind.DELETE_REPO_NOTIFICATION, principal, ip)
        notification.delete()


def notification_reset(*, notification: RepositoryNotification, principal: Principal, ip: str | None) -> None:
    """Back to zero failures and enabled (Quay's reset); deliveries held while it was failing or
    disabled are queued again now."""
    now = timezone.now()
    with transaction.atomic():
        RepositoryNotification.objects.filter(pk=notification.pk).update(
            number_of_failures=0, retry_after=None, enabled=True, disabled_reason="", disabled_at=None
        )
        Delivery.objects.filter(notification=notification, state=Delivery.State.PENDING).update(next_attempt_at=now)
        _log(notification, UsageLog.Kind.RESET_REPO_NOTIFICATION, principal, ip)
        transaction.on_commit(_queue_drain)
    notification.refresh_from_db()


def notification_test(*, notification: RepositoryNotification) -> Delivery:
    """Send the rule's event with sample data (Quay's "test notification"), through the outbox
    like any event; test deliveries leave the failure count alone."""
    repository = notification.repository
    payload = events.get_event(notification.event).sample(
        namespace=repository.namespace.name, name=repository.name, event_config=notification.event_config
    )
    now = timezone.now()
    with transaction.atomic():
        record = NotificationEvent.objects.create(
            repository=repository, kind=notification.event, payload=payload, created=now
        )
        delivery = Delivery.objects.create(event=record, notification=notification, is_test=True, next_attempt_at=now)
        _queue_on_commit(delivery.pk)
    return delivery


def _log(notification: RepositoryNotification, kind: UsageLog.Kind, principal: Principal, ip: str | None) -> None:
    repository = notification.repository
    log_action(
        kind,
        principal=principal,
        repository=repository,
        ip=ip,
        metadata={
            "repo": repository.name,
            "namespace": repository.namespace.name,
            "notification_id": str(notification.uuid),
            "event": notification.event,
            "method": notification.method,
        },
    )


# ---------------------------------------------------------------------------------------------
# Delivering


def retry_delay(failures: int) -> float:
    """Exponential backoff with jitter: BASE * 2^(n-1), capped, then a random point in its upper
    half, so receivers that failed together are not all retried at the same instant."""
    base = float(settings.NOTIFICATION_RETRY_BASE_SECONDS)
    cap = float(settings.NOTIFICATION_RETRY_MAX_SECONDS)
    delay = min(cap, base * 2 ** min(max(failures, 1) - 1, 40))
    return delay / 2 + random.uniform(0, delay / 2)


def _lease() -> timedelta:
    return timedelta(seconds=float(settings.NOTIFICATION_LEASE_SECONDS))


def _claimable(delivery: Delivery, now: datetime) -> bool:
    """Due and pending, or being sent under a lease that lapsed; and its rule enabled and not
    cooling down after a failure (test deliveries always go)."""
    if delivery.state == Delivery.State.PENDING:
        due = delivery.next_attempt_at <= now
    elif delivery.state == Delivery.State.SENDING:
        due = delivery.lease_expires is not None and delivery.lease_expires < now
    else:
        due = False
    if not due or delivery.is_test:
        return due
    notification = delivery.notification
    return notification.enabled and (notification.retry_after is None or notification.retry_after <= now)


def _claim(delivery: Delivery, now: datetime) -> uuid.UUID | None:
    """Take a delivery for one attempt with one conditional UPDATE on the state that was read
    (its state and attempt count): of workers racing for it, exactly one changes the row."""
    token = uuid.uuid4()
    claimed = Delivery.objects.filter(pk=delivery.pk, state=delivery.state, attempts=delivery.attempts).update(
        state=Delivery.State.SENDING,
        lease_token=token,
        lease_expires=now + _lease(),
        attempts=F("attempts") + 1,
        last_attempt_at=now,
    )
    return token if claimed else None


def delivery_attempt(*, delivery_id: int) -> str | None:
    """Make one attempt at a delivery if it is due and nobody else holds it; returns the state it
    ends in, or None when it was not ours to send."""
    delivery = (
        Delivery.objects.select_related("event", "notification__repository__namespace").filter(pk=delivery_id).first()
    )
    now = timezone.now()
    if delivery is None or not _claimable(delivery, now):
        return None
    token = _claim(delivery, now)
    if token is None:
        return None
    notification = delivery.notification
    if delivery.state == Delivery.State.SENDING:
        # The previous holder's lease lapsed: it died mid-attempt, so that attempt has no outcome.
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started=delivery.last_attempt_at or now,
            error="The worker stopped during this attempt (its lease lapsed); sent again with the same id",
        )
    delivery.attempts += 1
    delivery.state = Delivery.State.SENDING
    context = Context(
        notification=notification,
        config=notification_config(notification),
        event=events.get_event(delivery.event.kind),
        payload=delivery.event.payload,
        delivery_uuid=str(delivery.uuid),
        delivery_id=delivery.pk,
        is_test=delivery.is_test,
    )
    started = time.monotonic()
    error: DeliveryError | None = None
    try:
        outcome = get_method(notification.method).send(context)
        status_code, excerpt = outcome.status_code, outcome.response_excerpt
    except DeliveryError as exc:
        error, status_code, excerpt = exc, exc.status_code, exc.response_excerpt
    except Exception as exc:  # a bug or an unexpected library error: retried, and logged
        log.exception("notification delivery %s failed unexpectedly", delivery.uuid)
        error, status_code, excerpt = DeliveryError(f"Internal error: {type(exc).__name__}"), None, ""
    duration_ms = int((time.monotonic() - started) * 1000)
    pause("delivery.sent")  # tests/faults: the receiver has answered, the outcome is not recorded
    state = _record_outcome(delivery, token, now, duration_ms, error, status_code, excerpt)
    metrics.notification_delivery(notification.method, state)
    return state


def _record_outcome(
    delivery: Delivery,
    token: uuid.UUID,
    started: datetime,
    duration_ms: int,
    error: DeliveryError | None,
    status_code: int | None,
    excerpt: str,
) -> str:
    try:
        return _record(delivery, token, started, duration_ms, error, status_code, excerpt)
    except IntegrityError:
        # The rule (and with it the delivery) was deleted while the attempt was under way.
        log.info("notification delivery %s was deleted during its attempt", delivery.uuid)
        return Delivery.State.FAILED


def _record(delivery, token, started, duration_ms, error, status_code, excerpt) -> str:
    notification = delivery.notification
    end = timezone.now()
    message = str(error)[:ERROR_CHARS] if error is not None else ""
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started=started,
            duration_ms=duration_ms,
            success=error is None,
            status_code=status_code,
            error=message,
            response_excerpt=(excerpt or "")[:ERROR_CHARS],
        )
        # Only while our claim stands: if it lapsed and another worker took over, the row is
        # theirs now and only our attempt is on record.
        ours = Delivery.objects.filter(pk=delivery.pk, state=Delivery.State.SENDING, lease_token=token)
        common = {
            "lease_token": None,
            "lease_expires": None,
            "last_status_code": status_code,
            "last_duration_ms": duration_ms,
            "last_error": message,
        }
        if error is None:
            ours.update(state=Delivery.State.DELIVERED, delivered_at=end, **common)
            state = Delivery.State.DELIVERED
            if not delivery.is_test and notification.number_of_failures:
                _endpoint_recovered(notification, end)
        else:
            if delivery.is_test:
                delay = timedelta(seconds=retry_delay(delivery.attempts))
            else:
                delay = _endpoint_failed(notification, end, message)
            deadline = delivery.retry_window_start + timedelta(seconds=settings.NOTIFICATION_RETRY_PERIOD_SECONDS)
            give_up = not error.retryable or end + delay > deadline
            state = Delivery.State.FAILED if give_up else Delivery.State.PENDING
            ours.update(state=state, next_attempt_at=end + delay, **common)
            if not give_up and delay <= timedelta(seconds=settings.NOTIFICATION_COUNTDOWN_MAX_SECONDS):
                # A short wait is kept by the broker; longer ones by the sweeper.
                _queue_on_commit(delivery.pk, countdown=delay.total_seconds())
    return state


def _endpoint_recovered(notification: RepositoryNotification, now: datetime) -> None:
    """A success after failures: the count goes back to 0 (as Quay) and the deliveries held back
    while the endpoint was failing are queued now."""
    RepositoryNotification.objects.filter(pk=notification.pk).update(number_of_failures=0, retry_after=None)
    transaction.on_commit(_queue_drain)


def _endpoint_failed(notification: RepositoryNotification, now: datetime, reason: str) -> timedelta:
    """Count a failed attempt against the rule (Quay's number_of_failures), make the endpoint
    cool down for the backoff delay (returned), and disable the rule, loudly, at the configured
    count."""
    RepositoryNotification.objects.filter(pk=notification.pk).update(number_of_failures=F("number_of_failures") + 1)
    failures = RepositoryNotification.objects.values_list("number_of_failures", flat=True).get(pk=notification.pk)
    delay = timedelta(seconds=retry_delay(failures))
    RepositoryNotification.objects.filter(pk=notification.pk).update(retry_after=now + delay)
    limit = settings.NOTIFICATION_DISABLE_AFTER_FAILURES
    if limit and failures >= limit:
        text = f"Disabled after {failures} failed attempts in a row; last error: {reason}"[:255]
        disabled = RepositoryNotification.objects.filter(pk=notification.pk, enabled=True).update(
            enabled=False, disabled_reason=text, disabled_at=now
        )
        if disabled:
            _notify_admins_of_disable(notification, failures, reason)
    return delay


def _notify_admins_of_disable(notification: RepositoryNotification, failures: int, reason: str) -> None:
    repository = notification.repository
    metadata = {
        **events.repository_fields(repository.namespace.name, repository.name),
        "notification_uuid": str(notification.uuid),
        "title": notification.title,
        "event": notification.event,
        "method": notification.method,
        "number_of_failures": failures,
        "reason": reason[:500],
    }
    UserNotification.objects.bulk_create(
        [
            UserNotification(user=user, kind=NOTICE_DISABLED, repository=repository, metadata=metadata)
            for user in selectors.repository_admins(repository=repository)
        ]
    )
    log.warning("notification %s of %s disabled after %d failures", notification.uuid, repository, failures)


def event_deliver(*, event_id: int) -> list[str | None]:
    """Make the first attempt of each delivery of a new event."""
    ids = list(Delivery.objects.filter(event_id=event_id).order_by("id").values_list("pk", flat=True))
    return [delivery_attempt(delivery_id=pk) for pk in ids]


def deliveries_drain(*, seconds: float, batch: int = 20) -> tuple[int, bool]:
    """Send whatever is due, for up to ``seconds``; returns how many attempts were made.

    A worker that woke up for one delivery goes on with the outbox instead of waiting for one
    broker message per delivery: the embedded default's filesystem broker is polled about once a
    second, which alone would cap delivery at a message per second per worker process. Workers
    draining side by side take turns through the claim; each picks a random batch among the
    earliest due deliveries, so they seldom reach for the same one. Returns how many attempts
    were made and whether due work was left when the time was up.
    """
    deadline = time.monotonic() + seconds
    attempted = 0
    while True:
        due = selectors.deliveries_due(now=timezone.now(), limit=batch * 10)
        if not due:
            return attempted, False
        if time.monotonic() >= deadline:
            return attempted, True
        for pk in random.sample(due, min(batch, len(due))):
            if delivery_attempt(delivery_id=pk) is not None:
                attempted += 1
            if time.monotonic() >= deadline:
                break


def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Send a delivery again, with the same id, whatever became of it; its retry period starts
    over."""
    if not delivery.notification.enabled and not delivery.is_test:
        raise NotificationError("The notification is disabled: reset it first")
    now = timezone.now()
    with transaction.atomic():
        updated = (
            Delivery.objects.filter(pk=delivery.pk)
            .exclude(state=Delivery.State.SENDING)
            .update(state=Delivery.State.PENDING, next_attempt_at=now, retry_window_start=now)
        )
        if not updated:
            raise NotificationError("The delivery is being sent right now")
        _queue_on_commit(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def delivery_sweep(*, now: datetime | None = None) -> dict:
    """Give up on deliveries past their retry period, and queue a drain when anything is due
    (retries, deliveries whose task was lost, attempts whose worker died). Run by celery beat
    every NOTIFICATION_SWEEP_SECONDS: one message per sweep at most, whatever the backlog."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.NOTIFICATION_RETRY_PERIOD_SECONDS)
    expired = Delivery.objects.filter(state=Delivery.State.PENDING, retry_window_start__lt=deadline).update(
        state=Delivery.State.FAILED, last_error="Not delivered within the retry period"
    )
    due = bool(selectors.deliveries_due(now=now, limit=1))
    if due:
        _queue_drain()
    return {"due": due, "expired": expired}


def deliveries_prune(*, now: datetime | None = None) -> int:
    """Forget finished deliveries (and events left without any) older than the log retention."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.NOTIFICATION_LOG_RETENTION_DAYS)
    _, counts = Delivery.objects.filter(
        created__lt=cutoff, state__in=[Delivery.State.DELIVERED, Delivery.State.FAILED]
    ).delete()
    NotificationEvent.objects.filter(created__lt=cutoff, deliveries__isnull=True).delete()
    return counts.get(Delivery._meta.label, 0)


# ---------------------------------------------------------------------------------------------
# The bell


def user_notification_set_dismissed(*, notification: UserNotification, dismissed: bool) -> UserNotification:
    UserNotification.objects.filter(pk=notification.pk).update(dismissed=dismissed)
    notification.dismissed = dismissed
    return notification


# ---------------------------------------------------------------------------------------------
# Authorized e-mail addresses


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def authorized_email_request(
    *, repository: Repository, email: str, principal: Principal, ip: str | None
) -> AuthorizedEmail:
    """Start (or restart) the confirmation of an address for a repository: the e-mail with the
    link is sent by the worker once this commits. A confirmed address stays as it is."""
    email = email.strip().lower()
    now = timezone.now()
    with transaction.atomic():
        record, _ = AuthorizedEmail.objects.select_for_update().get_or_create(repository=repository, email=email)
        recent = record.requested_at is not None and now - record.requested_at < AUTHORIZATION_RESEND_INTERVAL
        # Asking again and again must not turn the registry into a way to flood a mailbox.
        if not record.confirmed and not recent:
            AuthorizedEmail.objects.filter(pk=record.pk).update(requested_at=now)
            record_id = record.pk
            transaction.on_commit(lambda: _queue_authorization_email(record_id))
    return record


def _queue_authorization_email(record_id: int) -> None:
    from notifications import tasks

    try:
        tasks.send_authorization_email.delay(record_id)
    except Exception:
        log.warning("could not queue the authorization e-mail %s", record_id, exc_info=True)


def authorized_email_send(*, record_id: int) -> bool:
    """Give the address a fresh code (the previous link stops working) and mail the link."""
    record = AuthorizedEmail.objects.select_related("repository__namespace").filter(pk=record_id).first()
    if record is None or record.confirmed:
        return False
    code = crypto.random_token(48)
    AuthorizedEmail.objects.filter(pk=record.pk).update(code_hash=_code_hash(code))
    link = events.public_url(f"/authrepoemail?code={code}")
    values = {"repository": record.repository.full_name, "email": record.email, "link": link}
    mail = EmailMultiAlternatives(
        subject=f"Confirm notifications for {record.repository.full_name}",
        body=render_to_string("notifications/email/authorize.txt", values),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[record.email],
    )
    mail.attach_alternative(render_to_string("notifications/email/authorize.html", values), "text/html")
    mail.send()
    return True


def authorized_email_for_code(*, code: str) -> AuthorizedEmail | None:
    """The address waiting for this code, if any (for the confirmation page)."""
    if not code or len(code) > 200:
        return None
    return selectors.authorized_email_by_code_hash(code_hash=_code_hash(code))


def authorized_email_confirm(*, code: str) -> AuthorizedEmail | None:
    """Confirm the address a code was sent to; None for an unknown or replaced code."""
    record = authorized_email_for_code(code=code)
    if record is None:
        return None
    now = timezone.now()
    AuthorizedEmail.objects.filter(pk=record.pk).update(confirmed=True, confirmed_at=now, code_hash=None)
    record.confirmed, record.confirmed_at, record.code_hash = True, now, None
    return record
