"""Counts and times every HTTP request, by route name, method and status code.

First in MIDDLEWARE, so /v2/ requests (answered by registry.middleware's fast path) are seen
too. The route label is the URL pattern's name (``v2-manifest``, ``ui:repository-list``), never
the path: label values stay a small fixed set whatever clients ask for. Requests no route
matched are ``unmatched``.
"""

from time import perf_counter

from observability.metrics import observe_request


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        observe_request(
            match.view_name if match is not None else "unmatched",
            request.method,
            response.status_code,
            perf_counter() - start,
        )
        return response
