"""The security API's route; included before registry.rest.urls (whose last route would take it)."""

from django.urls import path

from registry.rest.urls import REPO  # also registers the apirepopath converter
from scanning.rest import views

urlpatterns = [
    path(
        f"{REPO}/manifest/<str:manifestref>/security",
        views.ManifestSecurityView.as_view(),
        name="api-repository-manifest-security",
    ),
]
