"""Repository notifications, their delivery log, authorized e-mails, and the user's bell.

Quay's paths and payloads (``/repository/<r>/notification/...``, ``/authorizedemail/<email>``,
``/user/notifications``); the delivery log and redelivery are ours. Everything about a
repository's notifications needs the admin role on it.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiRequest, OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts import scopes
from notifications import selectors, services
from notifications.methods.base import ConfigError
from notifications.methods.email import normalized_email
from notifications.rest import serializers as s
from quay_site.rest.errors import InvalidRequest, NotFound
from quay_site.rest.params import int_param
from quay_site.rest.views import ApiView
from registry.models import Role
from registry.rest.access import client_ip, principal_of, repository_for

NO_CONTENT = OpenApiResponse(description="Done")
# Quay's clients send ``{}`` (or nothing) to these operations; nothing in it is read.
EMPTY_BODY = OpenApiRequest(OpenApiTypes.OBJECT)
DELIVERIES_PER_PAGE, DELIVERIES_MAX = 20, 100
# Quay's default page of user notifications.
USER_NOTIFICATIONS_PER_PAGE, USER_NOTIFICATIONS_MAX = 5, 100


def _rule(request, repository: str, uuid: str):
    repo, _ = repository_for(request, repository, need=Role.ADMIN)
    rule = selectors.notification_by_uuid(repository=repo, notification_uuid=uuid)
    if rule is None:
        raise NotFound()
    return rule


class NotificationListView(ApiView):
    """``GET|POST /repository/<r>/notification/``."""

    required_scopes = {"*": scopes.REPO_ADMIN}
    nicknames = {"GET": "listRepoNotifications", "POST": "createRepoNotification"}

    @extend_schema(parameters=[s.REPOSITORY], responses={200: s.NotificationListDoc})
    def get(self, request, repository):
        """The repository's notifications."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        rows = selectors.notifications_of(repository=repo)
        return Response({"notifications": [s.notification_view(row) for row in rows]})

    @extend_schema(parameters=[s.REPOSITORY], request=s.NotificationCreateInput, responses={201: s.NotificationDoc})
    def post(self, request, repository):
        """Add a notification; a webhook's signing secret is in this answer only."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        data = s.NotificationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        event_config = values.get("eventConfig", values.get("event_config"))
        try:
            row, config = services.notification_create(
                repository=repo,
                event=values["event"],
                method=values["method"],
                config=values["config"],
                event_config=event_config,
                title=values.get("title"),
                principal=principal_of(request),
                ip=client_ip(request),
            )
        except services.NotificationError as exc:
            raise InvalidRequest(str(exc)) from None
        return Response(s.notification_view(row, config=config), status=201)


class NotificationView(ApiView):
    """``GET|DELETE /repository/<r>/notification/<uuid>``; POST resets its failures."""

    required_scopes = {"*": scopes.REPO_ADMIN}
    nicknames = {
        "GET": "getRepoNotification",
        "DELETE": "deleteRepoNotification",
        "POST": "resetRepositoryNotificationFailures",
    }

    @extend_schema(parameters=[s.REPOSITORY, s.NOTIFICATION_UUID], responses={200: s.NotificationDoc})
    def get(self, request, repository, uuid):
        """One notification."""
        return Response(s.notification_view(_rule(request, repository, uuid)))

    @extend_schema(parameters=[s.REPOSITORY, s.NOTIFICATION_UUID], responses={204: NO_CONTENT})
    def delete(self, request, repository, uuid):
        """Remove a notification, its pending deliveries and its delivery log."""
        services.notification_delete(
            notification=_rule(request, repository, uuid), principal=principal_of(request), ip=client_ip(request)
        )
        return Response(status=204)

    @extend_schema(parameters=[s.REPOSITORY, s.NOTIFICATION_UUID], request=EMPTY_BODY, responses={204: NO_CONTENT})
    def post(self, request, repository, uuid):
        """Reset the failure count to 0 and enable the notification again."""
        services.notification_reset(
            notification=_rule(request, repository, uuid), principal=principal_of(request), ip=client_ip(request)
        )
        return Response(status=204)


class NotificationTestView(ApiView):
    """``POST /repository/<r>/notification/<uuid>/test``."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "testRepoNotification"}

    @extend_schema(parameters=[s.REPOSITORY, s.NOTIFICATION_UUID], request=EMPTY_BODY, responses={200: s.TestQueuedDoc})
    def post(self, request, repository, uuid):
        """Send the notification's event with sample data."""
        delivery = services.notification_test(notification=_rule(request, repository, uuid))
        return Response({"delivery_id": str(delivery.uuid)})


class DeliveryListView(ApiView):
    """``GET /repository/<r>/notification/<uuid>/deliveries``: the delivery log."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "listNotificationDeliveries"}

    @extend_schema(
        parameters=[s.REPOSITORY, s.NOTIFICATION_UUID, s.PAGE, s.limit_param(DELIVERIES_PER_PAGE, DELIVERIES_MAX)],
        responses={200: s.DeliveryListDoc},
    )
    def get(self, request, repository, uuid):
        """The notification's deliveries, newest first."""
        rule = _rule(request, repository, uuid)
        page = int_param(request, "page", 0, low=0, high=100000)
        limit = int_param(request, "limit", DELIVERIES_PER_PAGE, low=1, high=DELIVERIES_MAX)
        rows, more = selectors.deliveries_of(notification=rule, page=page, limit=limit)
        return Response({"deliveries": [s.delivery_view(row) for row in rows], "additional": more})


def _delivery(request, repository, uuid, delivery_uuid):
    rule = _rule(request, repository, uuid)
    delivery = selectors.delivery_by_uuid(notification=rule, delivery_uuid=delivery_uuid)
    if delivery is None:
        raise NotFound()
    return delivery


class DeliveryView(ApiView):
    """``GET /repository/<r>/notification/<uuid>/deliveries/<id>``: one delivery, its attempts."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "getNotificationDelivery"}

    @extend_schema(
        parameters=[s.REPOSITORY, s.NOTIFICATION_UUID, s.DELIVERY_UUID], responses={200: s.DeliveryDetailDoc}
    )
    def get(self, request, repository, uuid, delivery_uuid):
        """A delivery with its payload and every attempt."""
        return Response(s.delivery_view(_delivery(request, repository, uuid, delivery_uuid), detail=True))


class DeliveryRedeliverView(ApiView):
    """``POST .../deliveries/<id>/redeliver``: send it again, with the same id."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "redeliverNotificationDelivery"}

    @extend_schema(
        parameters=[s.REPOSITORY, s.NOTIFICATION_UUID, s.DELIVERY_UUID],
        request=EMPTY_BODY,
        responses={202: s.DeliveryDoc},
    )
    def post(self, request, repository, uuid, delivery_uuid):
        """Queue the delivery again now; its retry period starts over."""
        delivery = _delivery(request, repository, uuid, delivery_uuid)
        try:
            delivery = services.delivery_redeliver(delivery=delivery)
        except services.NotificationError as exc:
            raise InvalidRequest(str(exc)) from None
        return Response(s.delivery_view(delivery), status=202)


class AuthorizedEmailView(ApiView):
    """``GET|POST /repository/<r>/authorizedemail/<email>``."""

    required_scopes = {"*": scopes.REPO_ADMIN}
    nicknames = {"GET": "checkRepoEmailAuthorized", "POST": "sendAuthorizeRepoEmail"}

    def _email(self, email: str) -> str:
        try:
            return normalized_email(email)
        except ConfigError as exc:
            raise InvalidRequest(str(exc)) from None

    @extend_schema(parameters=[s.REPOSITORY, s.EMAIL], responses={200: s.AuthorizedEmailDoc})
    def get(self, request, repository, email):
        """Whether the address is authorized (404 when no confirmation was ever asked)."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        record = selectors.authorized_email(repository=repo, email=self._email(email))
        if record is None:
            raise NotFound()
        return Response(s.authorized_email_view(record))

    @extend_schema(parameters=[s.REPOSITORY, s.EMAIL], request=EMPTY_BODY, responses={200: s.AuthorizedEmailDoc})
    def post(self, request, repository, email):
        """Mail the address a confirmation link (again, if it is not confirmed yet)."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        record = services.authorized_email_request(
            repository=repo, email=self._email(email), principal=principal_of(request), ip=client_ip(request)
        )
        return Response(s.authorized_email_view(record))


class UserNotificationListView(ApiView):
    """``GET /user/notifications``: the caller's undismissed notifications, newest first."""

    required_scopes = {"GET": scopes.USER_ADMIN}
    nicknames = {"GET": "listUserNotifications"}

    @extend_schema(
        parameters=[s.PAGE, s.limit_param(USER_NOTIFICATIONS_PER_PAGE, USER_NOTIFICATIONS_MAX)],
        responses={200: s.UserNotificationListDoc},
    )
    def get(self, request):
        """A page of the caller's notifications (Quay's page and limit) and the unread count."""
        page = int_param(request, "page", 0, low=0, high=100000)
        limit = int_param(request, "limit", USER_NOTIFICATIONS_PER_PAGE, low=1, high=USER_NOTIFICATIONS_MAX)
        rows, more = selectors.user_notifications(user=request.user, page=page, limit=limit)
        return Response(
            {
                "notifications": [s.user_notification_view(row) for row in rows],
                "additional": more,
                "unread": selectors.user_notification_unread_count(user=request.user),
            }
        )


class UserNotificationView(ApiView):
    """``GET|PUT /user/notifications/<uuid>``: another user's notification is a 404."""

    required_scopes = {"*": scopes.USER_ADMIN}
    nicknames = {"GET": "getUserNotification", "PUT": "updateUserNotification"}

    def _row(self, request, uuid):
        row = selectors.user_notification_by_uuid(user=request.user, notification_uuid=uuid)
        if row is None:
            raise NotFound()
        return row

    @extend_schema(parameters=[s.USER_NOTIFICATION_UUID], responses={200: s.UserNotificationDoc})
    def get(self, request, uuid):
        """One of the caller's notifications."""
        return Response(s.user_notification_view(self._row(request, uuid)))

    @extend_schema(
        parameters=[s.USER_NOTIFICATION_UUID],
        request=s.UserNotificationUpdateInput,
        responses={200: s.UserNotificationDoc},
    )
    def put(self, request, uuid):
        """Dismiss (or bring back) one of the caller's notifications."""
        row = self._row(request, uuid)
        data = s.UserNotificationUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.user_notification_set_dismissed(notification=row, dismissed=data.validated_data["dismissed"])
        return Response(s.user_notification_view(row))
