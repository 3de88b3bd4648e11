"""The OpenAPI 3 schema of the REST API (drf-spectacular): operation ids, scopes, auth schemes.

Every view names the scope each method needs in ``required_scopes``; the schema shows it as an
OAuth2 scope requirement (the ``oauth2_implicit`` scheme Quay's discovery document names), next
to plain bearer-token and session alternatives.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from accounts import scopes

OAUTH_SCHEME = "oauth2_implicit"
AUTHORIZATION_PATH = "/oauth/authorize"


def required_scope(view, method: str) -> str | None:
    required = getattr(view, "required_scopes", {}) or {}
    return required.get(method.upper(), required.get("*"))


def allows_anonymous(view, method: str) -> bool:
    return required_scope(view, method) is None or method.upper() in getattr(view, "anonymous_methods", ())


class ApiAutoSchema(AutoSchema):
    def get_operation_id(self):
        nickname = (getattr(self.view, "nicknames", None) or {}).get(self.method.upper())
        return nickname or super().get_operation_id()

    def get_auth(self):
        auths = super().get_auth()
        if allows_anonymous(self.view, self.method) and {} not in auths:
            auths.append({})
        return auths


class OAuthTokenScheme(OpenApiAuthenticationExtension):
    target_class = "quay_site.rest.auth.OAuthTokenAuthentication"
    name = [OAUTH_SCHEME, "bearerAuth"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "oauth2",
                "flows": {"implicit": {"authorizationUrl": AUTHORIZATION_PATH, "scopes": dict(scopes.DESCRIPTIONS)}},
            },
            {"type": "http", "scheme": "bearer", "description": "An API token with the scopes the operation needs"},
        ]

    def get_security_requirement(self, auto_schema):
        scope = required_scope(auto_schema.view, auto_schema.method)
        return [{OAUTH_SCHEME: [scope] if scope else []}, {"bearerAuth": []}]


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "quay_site.rest.auth.CsrfSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "A signed-in session; writes also send the X-CSRF-Token header (GET /csrf_token)",
        }


def only_rest_api(endpoints, **kwargs):
    """Preprocessing hook: the schema covers the REST API, not the OCI protocol under /v2/."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/v1/") or endpoint[0] == "/csrf_token"]
