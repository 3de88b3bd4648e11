"""Quay's OAuth web endpoints, mounted at /oauth/ (outside /api/v1)."""

from django.urls import path

from accounts.rest import applications

urlpatterns = [
    path("authorizeapp", applications.AuthorizeApplicationView.as_view(), name="oauth-authorize-app"),
]
