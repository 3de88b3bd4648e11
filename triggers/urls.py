"""Trigger routes at the site root: the webhooks (Quay's custom git path, one per provider) and
the OAuth callbacks the providers' applications are registered with (guide chapter 9)."""

from django.urls import path, register_converter

from triggers import views


class ProviderConverter:
    regex = "github|gitlab|bitbucket"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ProviderConverter, "gitprovider")

urlpatterns = [
    path("webhooks/push/trigger/<str:trigger_uuid>", views.push_webhook, name="trigger-push-webhook"),
    path(
        "webhooks/<gitprovider:service>/trigger/<str:trigger_uuid>",
        views.provider_webhook,
        name="trigger-provider-webhook",
    ),
    path("oauth2/<gitprovider:service>/callback", views.oauth_callback, name="trigger-oauth-callback"),
]
