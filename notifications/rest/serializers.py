"""Inputs and Quay's answer shapes for the notification endpoints.

Inputs are DRF serializers; answers are plain dicts built by the ``*_view`` functions here, each
with a documentation-only serializer beside it for the OpenAPI schema.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from accounts.rest.serializers import format_date
from notifications import services
from notifications.events import EVENTS
from notifications.methods import METHODS
from notifications.models import AuthorizedEmail, Delivery, RepositoryNotification, UserNotification


def _path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description)


REPOSITORY = _path("repository", "The full path: namespace/name")
NOTIFICATION_UUID = _path("uuid", "The notification's uuid")
DELIVERY_UUID = _path("delivery_uuid", "The delivery's id (the webhook-id receivers see)")
EMAIL = _path("email", "The e-mail address")
USER_NOTIFICATION_UUID = _path("uuid", "The uuid of the user notification")
PAGE = OpenApiParameter("page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Page number, from 0")


def limit_param(default: int, maximum: int) -> OpenApiParameter:
    return OpenApiParameter(
        "limit",
        OpenApiTypes.INT,
        OpenApiParameter.QUERY,
        description=f"Page size (default {default}, at most {maximum})",
    )


# ---------------------------------------------------------------------------------------------
# Inputs


class NotificationCreateInput(serializers.Serializer):
    event = serializers.ChoiceField(choices=list(EVENTS), help_text="The event the notification responds to")
    method = serializers.ChoiceField(choices=list(METHODS), help_text="How it is delivered")
    config = serializers.DictField(help_text="The method's settings (url, email, target, tokens)")
    eventConfig = serializers.DictField(
        required=False, help_text="Filters of the event: ref-regex for builds, level for vulnerabilities"
    )
    event_config = serializers.DictField(required=False, help_text="Same as eventConfig (sent by some clients)")
    title = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)


class UserNotificationUpdateInput(serializers.Serializer):
    dismissed = serializers.BooleanField(help_text="Whether the user dismissed the notification")


# ---------------------------------------------------------------------------------------------
# Outputs


def notification_view(row: RepositoryNotification, *, config: dict | None = None) -> dict:
    return {
        "uuid": str(row.uuid),
        "title": row.title,
        "event": row.event,
        "method": row.method,
        "config": config if config is not None else services.notification_public_config(row),
        "event_config": row.event_config,
        "number_of_failures": row.number_of_failures,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason or None,
        "disabled_at": format_date(row.disabled_at),
        "created": format_date(row.created),
    }


def attempt_view(attempt) -> dict:
    return {
        "number": attempt.number,
        "started": format_date(attempt.started),
        "duration_ms": attempt.duration_ms,
        "success": attempt.success,
        "status_code": attempt.status_code,
        "error": attempt.error or None,
        "response": attempt.response_excerpt or None,
    }


def delivery_view(row: Delivery, *, detail: bool = False) -> dict:
    unfinished = row.state in (Delivery.State.PENDING, Delivery.State.SENDING)
    view = {
        "id": str(row.uuid),
        "event": row.event.kind,
        "event_id": str(row.event.uuid),
        "is_test": row.is_test,
        "state": row.state,
        "attempts": row.attempts,
        "created": format_date(row.created),
        "last_attempt": format_date(row.last_attempt_at),
        "next_attempt": format_date(row.next_attempt_at) if unfinished else None,
        "delivered": format_date(row.delivered_at),
        "last_status_code": row.last_status_code,
        "last_duration_ms": row.last_duration_ms,
        "last_error": row.last_error or None,
    }
    if detail:
        view["payload"] = row.event.payload
        view["attempt_log"] = [attempt_view(attempt) for attempt in row.attempt_log.all()]
    return view


def user_notification_view(row: UserNotification) -> dict:
    return {
        "id": str(row.uuid),
        "organization": row.organization.name if row.organization_id else None,
        "kind": row.kind,
        "created": format_date(row.created),
        "metadata": row.metadata,
        "dismissed": row.dismissed,
    }


def authorized_email_view(row: AuthorizedEmail) -> dict:
    # Unlike Quay, never the confirmation code: whoever reads it could confirm without the mailbox.
    return {
        "email": row.email,
        "repository": row.repository.name,
        "namespace": row.repository.namespace.name,
        "confirmed": row.confirmed,
    }


# ---------------------------------------------------------------------------------------------
# Documentation of the outputs


@extend_schema_field({"type": "object", "additionalProperties": {}, "description": "Free-form JSON"})
class FreeFormField(serializers.DictField):
    pass


class NotificationDoc(serializers.Serializer):
    uuid = serializers.CharField()
    title = serializers.CharField(allow_blank=True)
    event = serializers.ChoiceField(choices=list(EVENTS))
    method = serializers.ChoiceField(choices=list(METHODS))
    config = FreeFormField(help_text="The method's settings; secrets shown only in the creation answer")
    event_config = FreeFormField()
    number_of_failures = serializers.IntegerField(help_text="Failed attempts in a row (0 after a success)")
    enabled = serializers.BooleanField(help_text="False once disabled after too many failures (reset re-enables)")
    disabled_reason = serializers.CharField(allow_null=True)
    disabled_at = serializers.CharField(allow_null=True)
    created = serializers.CharField()


class NotificationListDoc(serializers.Serializer):
    notifications = NotificationDoc(many=True)


class TestQueuedDoc(serializers.Serializer):
    delivery_id = serializers.CharField(help_text="The delivery of the test, in the delivery log")


class AttemptDoc(serializers.Serializer):
    number = serializers.IntegerField()
    started = serializers.CharField()
    duration_ms = serializers.IntegerField(allow_null=True)
    success = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True, help_text="The receiver's HTTP status, if any")
    error = serializers.CharField(allow_null=True)
    response = serializers.CharField(allow_null=True, help_text="The start of the receiver's answer")


class DeliveryDoc(serializers.Serializer):
    id = serializers.CharField(help_text="The delivery id: webhook-id, the same on every retry")
    event = serializers.ChoiceField(choices=list(EVENTS))
    event_id = serializers.CharField()
    is_test = serializers.BooleanField()
    state = serializers.ChoiceField(choices=[state.value for state in Delivery.State])
    attempts = serializers.IntegerField()
    created = serializers.CharField()
    last_attempt = serializers.CharField(allow_null=True)
    next_attempt = serializers.CharField(allow_null=True)
    delivered = serializers.CharField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_duration_ms = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)


class DeliveryDetailDoc(DeliveryDoc):
    payload = FreeFormField(help_text="The event as sent")
    attempt_log = AttemptDoc(many=True)


class DeliveryListDoc(serializers.Serializer):
    deliveries = DeliveryDoc(many=True)
    additional = serializers.BooleanField(help_text="Whether another page follows")


class UserNotificationDoc(serializers.Serializer):
    id = serializers.CharField()
    organization = serializers.CharField(allow_null=True)
    kind = serializers.CharField(help_text="The event name, or notification_disabled")
    created = serializers.CharField()
    metadata = FreeFormField()
    dismissed = serializers.BooleanField()


class UserNotificationListDoc(serializers.Serializer):
    notifications = UserNotificationDoc(many=True)
    additional = serializers.BooleanField(help_text="Whether another page follows")
    unread = serializers.IntegerField(help_text="How many notifications are not dismissed")


class AuthorizedEmailDoc(serializers.Serializer):
    email = serializers.CharField()
    repository = serializers.CharField()
    namespace = serializers.CharField()
    confirmed = serializers.BooleanField()
