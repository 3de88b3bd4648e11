"""Health endpoints (public: load balancers poll them; they answer booleans only) and the
Prometheus scrape endpoint (only for the networks in METRICS_ALLOWED_NETWORKS)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from observability import health
from observability.collectors import StateCollector
from observability.metrics import METRICS_DIR


@never_cache
@require_safe
def health_instance(request):
    body, status = health.check("instance")
    return JsonResponse(body, status=status)


@never_cache
@require_safe
def health_endtoend(request):
    body, status = health.check("endtoend")
    return JsonResponse(body, status=status)


def _addresses(request) -> list[str]:
    """The connection's address and, when the request came through a proxy, every address its
    X-Forwarded-For names: all must be allowed. A proxy on loopback (deploy/nginx.conf) thus
    does not open /metrics to whoever reaches the proxy, and a client can only narrow what it is
    allowed by adding the header, never widen it."""
    addresses = [request.META.get("REMOTE_ADDR", "")]
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded:
        addresses += [part.strip() for part in forwarded.split(",")]
    return addresses


def _allowed(request) -> bool:
    networks = settings.METRICS_ALLOWED_NETWORKS
    for text in _addresses(request):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not any(address in network for network in networks):
            return False
    return True


@never_cache
@require_safe
def metrics(request):
    if not _allowed(request):
        return HttpResponse("Metrics are not served to this address.\n", status=403, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(METRICS_DIR))
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
