from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from accounts.rest.views import CsrfTokenView

urlpatterns = [
    path("v2/", include("registry.api.urls")),
    path("api/v1/openapi.json", SpectacularJSONAPIView.as_view(), name="api-schema"),
    # The split view loads its start-up script from a URL instead of inlining it (CSP-friendly).
    # Swagger UI sets inline styles: this page alone allows them (scripts stay our own files).
    path(
        "api/v1/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("api/v1/", include("accounts.rest.urls")),
    # Before registry.rest.urls, whose last route would take the .../notification/... paths.
    path("api/v1/", include("notifications.rest.urls")),
    path("api/v1/", include("triggers.rest.urls")),
    path("api/v1/", include("builds.rest.urls")),
    path("api/v1/", include("scanning.rest.urls")),
    path("api/v1/", include("registry.rest.urls")),
    path("csrf_token", CsrfTokenView.as_view(), name="csrf-token"),
    path("oauth/", include("accounts.rest.oauth_urls")),
    path("admin/", admin.site.urls),
    # Build trigger webhooks (Quay's path: /webhooks/push/trigger/<uuid>).
    path("", include("triggers.urls")),
    # No separate static file server in the embedded default: files collected by `collectstatic`
    # (admin's CSS and JS) are served here, as FileResponses that gunicorn sends with sendfile.
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
    # The page of the e-mail confirmation link (/authrepoemail, Quay's path).
    path("", include("notifications.urls")),
    # Build package upload (filedrop) and the workers' package download.
    path("", include("builds.urls")),
    # Squashed image downloads: /c1/squash/<namespace>/<repository>/<tag>.
    path("", include("squash.urls")),
    # /health/instance, /health/endtoend (Quay's paths) and the Prometheus /metrics.
    path("", include("observability.urls")),
    # The web UI last: its pages live at the root ("/" is the repository list).
    path("", include("ui.urls")),
]
