"""Quay's REST error format (RFC 7807 problem details plus Quay's older field names).

Automation written for Quay reads ``error_message``/``error_type`` as well as ``detail``/
``title``, so every /api/v1 error carries all of them. DRF's own exceptions (validation,
authentication, 404, 405, throttling) are mapped onto the same shape by ``exception_handler``.
"""

from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response


class ApiError(Exception):
    error_type = "invalid_request"
    status = 400

    def __init__(self, detail: str, *, status: int | None = None, error_type: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if error_type is not None:
            self.error_type = error_type


class InvalidRequest(ApiError):
    error_type, status = "invalid_request", 400


class InvalidToken(ApiError):
    error_type, status = "invalid_token", 401


class InsufficientScope(ApiError):
    error_type, status = "insufficient_scope", 403


class NotFound(ApiError):
    error_type, status = "not_found", 404

    def __init__(self, detail: str = "Not Found"):
        super().__init__(detail)


def problem(request, status: int, error_type: str, detail: str) -> dict:
    base = request.build_absolute_uri("/api/v1/error/") if request is not None else "/api/v1/error/"
    return {
        "status": status,
        "error_message": detail,
        "error_type": error_type,
        "title": error_type,
        "detail": detail,
        "type": f"{base}{error_type}",
    }


def _validation_detail(data) -> str:
    """Flatten DRF's nested validation errors into one readable sentence."""
    if isinstance(data, dict):
        parts = []
        for field, value in data.items():
            text = _validation_detail(value)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(data, list):
        return " ".join(_validation_detail(item) for item in data)
    return str(data)


def exception_handler(exc, context):
    request = context.get("request")
    headers = {}
    if isinstance(exc, ApiError):
        status, error_type, detail = exc.status, exc.error_type, exc.detail
    elif isinstance(exc, Http404 | exceptions.NotFound):
        status, error_type, detail = 404, "not_found", "Not Found"
    elif isinstance(exc, exceptions.ValidationError):
        status, error_type, detail = 400, "invalid_request", _validation_detail(exc.detail)
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        status, error_type, detail = 401, "invalid_token", str(exc.detail)
    elif isinstance(exc, exceptions.PermissionDenied):
        status, error_type, detail = 403, "insufficient_scope", str(exc.detail)
    elif isinstance(exc, exceptions.Throttled):
        status, error_type, detail = 429, "invalid_request", str(exc.detail)
        if exc.wait:
            headers["Retry-After"] = str(int(exc.wait))
    elif isinstance(exc, exceptions.APIException):
        status, error_type, detail = exc.status_code, "invalid_request", str(exc.detail)
        if isinstance(exc, exceptions.MethodNotAllowed):
            headers["Allow"] = ", ".join(context["view"].allowed_methods)
    else:
        return None
    return Response(problem(request, status, error_type, detail), status=status, headers=headers)
