"""Routes of the build endpoints under /api/v1.

Included before registry.rest.urls (see quay_site/urls.py): its last route takes any
``repository/<path>`` and would swallow ``.../build/...`` otherwise.
"""

from django.urls import path

from builds.rest import views
from registry.rest.urls import REPO  # also registers the apirepopath converter

BUILD = f"{REPO}/build/<str:build_uuid>"

urlpatterns = [
    path("filedrop/", views.FileDropView.as_view(), name="api-filedrop"),
    path(f"{REPO}/build/", views.BuildListView.as_view(), name="api-repository-builds"),
    path(f"{BUILD}/status", views.BuildStatusView.as_view(), name="api-repository-build-status"),
    path(f"{BUILD}/logs", views.BuildLogsView.as_view(), name="api-repository-build-logs"),
    path(BUILD, views.BuildView.as_view(), name="api-repository-build"),
]
