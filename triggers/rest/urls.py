"""Routes of the build trigger endpoints under /api/v1.

Included before registry.rest.urls (see quay_site/urls.py): its last route takes any
``repository/<path>`` and would swallow ``.../trigger/...`` otherwise.
"""

from django.urls import path

from registry.rest.urls import REPO  # also registers the apirepopath converter
from triggers.rest import views

TRIGGER = f"{REPO}/trigger/<str:trigger_uuid>"

urlpatterns = [
    path(f"{REPO}/trigger/", views.TriggerListView.as_view(), name="api-repository-triggers"),
    path(f"{TRIGGER}/activate", views.TriggerActivateView.as_view(), name="api-repository-trigger-activate"),
    path(f"{TRIGGER}/start", views.TriggerStartView.as_view(), name="api-repository-trigger-start"),
    path(f"{TRIGGER}/analyze", views.TriggerAnalyzeView.as_view(), name="api-repository-trigger-analyze"),
    path(f"{TRIGGER}/subdir", views.TriggerSubdirView.as_view(), name="api-repository-trigger-subdir"),
    path(f"{TRIGGER}/builds", views.TriggerBuildListView.as_view(), name="api-repository-trigger-builds"),
    path(f"{TRIGGER}/connect", views.TriggerConnectView.as_view(), name="api-repository-trigger-connect"),
    path(f"{TRIGGER}/namespaces", views.TriggerNamespacesView.as_view(), name="api-repository-trigger-namespaces"),
    path(f"{TRIGGER}/sources", views.TriggerSourcesView.as_view(), name="api-repository-trigger-sources"),
    path(
        f"{TRIGGER}/fields/<str:field_name>",
        views.TriggerFieldValuesView.as_view(),
        name="api-repository-trigger-fields",
    ),
    path(TRIGGER, views.TriggerView.as_view(), name="api-repository-trigger"),
]
