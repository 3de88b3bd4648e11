"""A short path for /v2/ requests through the middleware stack.

The registry API authenticates by bearer token only and needs none of the session, CSRF,
authentication, message or clickjacking middleware; together they cost about a fifth of a
manifest GET. This middleware sits first and answers /v2/ requests itself by resolving the URL
and calling the view (DRF views handle their own errors), so the rest of the stack never runs.
"""

from django.http import JsonResponse
from django.urls import Resolver404, resolve

from registry.api.base import API_VERSION_HEADER

PREFIX = "/v2/"
# What SecurityMiddleware, XFrameOptionsMiddleware and the CSP middleware would add, which this
# path skips: registry answers are JSON or bytes, never a page to frame, sniff or run scripts in.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
)


class RegistryFastPathMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            response = JsonResponse(
                {"errors": [{"code": "UNSUPPORTED", "message": "unknown registry endpoint", "detail": None}]},
                status=404,
            )
            response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        else:
            request.resolver_match = match
            response = match.func(request, *match.args, **match.kwargs)
        headers = response.headers
        for name, value in SECURITY_HEADERS:
            headers[name] = value
        return response
