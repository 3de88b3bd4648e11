"""The git providers of build triggers: GitHub (and Enterprise), GitLab, Bitbucket Cloud.

``provider_for(service)`` gives the Provider for a service from its ProviderApp (the OAuth
application a superuser entered); ``ProviderNotConfigured`` when there is none or it is off.
"""

from __future__ import annotations

from accounts import crypto
from triggers.models import ProviderApp
from triggers.providers.base import (  # noqa: F401  (this package's API)
    Provider,
    ProviderAuthError,
    ProviderError,
    SourceRepository,
    Token,
)
from triggers.providers.bitbucket import Bitbucket
from triggers.providers.github import GitHub
from triggers.providers.gitlab import GitLab

PROVIDERS: dict[str, type[Provider]] = {cls.service: cls for cls in (GitHub, GitLab, Bitbucket)}
SERVICES = tuple(PROVIDERS)


class ProviderNotConfigured(ProviderError):
    def __init__(self, service: str):
        title = PROVIDERS[service].title if service in PROVIDERS else service
        super().__init__(f"{title} build triggers are not enabled on this registry")


def provider_for(service: str) -> Provider:
    """The configured and enabled provider of ``service``."""
    if service not in PROVIDERS:
        raise ProviderNotConfigured(service)
    app = ProviderApp.objects.filter(service=service).first()
    if app is None or not app.enabled or not app.client_id or not app.client_secret_encrypted:
        raise ProviderNotConfigured(service)
    return PROVIDERS[service](app, crypto.decrypt(app.client_secret_encrypted))


def provider_enabled(service: str) -> bool:
    try:
        provider_for(service)
    except ProviderError:
        return False
    return True
