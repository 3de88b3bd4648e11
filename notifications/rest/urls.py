"""Routes of the notification endpoints under /api/v1.

Included before registry.rest.urls (see quay_site/urls.py): its last route takes any
``repository/<path>`` and would swallow ``.../notification/...`` otherwise.
"""

from django.urls import path

from notifications.rest import views
from registry.rest.urls import REPO  # also registers the apirepopath converter

NOTE = f"{REPO}/notification/<str:uuid>"

urlpatterns = [
    path(f"{REPO}/notification/", views.NotificationListView.as_view(), name="api-repository-notifications"),
    path(f"{NOTE}/test", views.NotificationTestView.as_view(), name="api-repository-notification-test"),
    path(f"{NOTE}/deliveries", views.DeliveryListView.as_view(), name="api-repository-notification-deliveries"),
    path(
        f"{NOTE}/deliveries/<str:delivery_uuid>/redeliver",
        views.DeliveryRedeliverView.as_view(),
        name="api-repository-notification-redeliver",
    ),
    path(
        f"{NOTE}/deliveries/<str:delivery_uuid>",
        views.DeliveryView.as_view(),
        name="api-repository-notification-delivery",
    ),
    path(NOTE, views.NotificationView.as_view(), name="api-repository-notification"),
    path(f"{REPO}/authorizedemail/<str:email>", views.AuthorizedEmailView.as_view(), name="api-authorized-email"),
    path("user/notifications", views.UserNotificationListView.as_view(), name="api-user-notifications"),
    path("user/notifications/<str:uuid>", views.UserNotificationView.as_view(), name="api-user-notification"),
]
