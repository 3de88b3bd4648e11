"""``GET /api/v1/discovery``: the REST API described in Swagger 2.0, the shape Quay serves.

Paths and methods come from the URL patterns under /api/v1 (every ApiView, whichever app it
lives in); the scope of each operation from the view's ``required_scopes``; query parameters,
request bodies and response bodies from the drf-spectacular schema of the same views, turned
into their Swagger 2.0 form. Built once per process: the URL patterns do not change.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from functools import lru_cache

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from accounts import scopes
from quay_site.rest.views import ApiView
from registry.rest.schema import AUTHORIZATION_PATH, OAUTH_SCHEME, required_scope

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
ROUTE_PARAM_RE = re.compile(r"<(?:[^>:]+:)?(\w+)>")
REGEX_PARAM_RE = re.compile(r"\(\?P<(\w+)>[^)]*\)")
METHODS = ("get", "post", "put", "patch", "delete")

API_ERROR = {
    "type": "object",
    "description": "The body of every error answer",
    "properties": {
        "status": {"type": "integer", "description": "The HTTP status"},
        "type": {"type": "string", "description": "A URL naming the kind of error"},
        "title": {"type": "string", "description": "The kind of error, as a short code"},
        "detail": {"type": "string", "description": "What went wrong with this request"},
        "error_message": {"type": "string", "description": "Older name of detail"},
        "error_type": {"type": "string", "description": "Older name of title"},
    },
    "required": ["status", "type", "title"],
}


def _route_text(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        return ROUTE_PARAM_RE.sub(r"{\1}", str(pattern))
    if isinstance(pattern, RegexPattern):
        text = pattern.regex.pattern.lstrip("^").removesuffix("$").removesuffix(r"\Z")
        return REGEX_PARAM_RE.sub(r"{\1}", text)
    return str(pattern)


def api_endpoints(patterns=None, prefix: str = "/") -> list[tuple[str, type]]:
    """(swagger path, view class) of every ApiView under /api/v1, in URL order."""
    found = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            found += api_endpoints(entry.url_patterns, prefix + _route_text(entry.pattern))
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            path = prefix + _route_text(entry.pattern)
            if path.startswith(API_PREFIX) and isinstance(view_class, type) and issubclass(view_class, ApiView):
                found.append((path, view_class))
    return found


def _tag(view_class: type) -> tuple[str, str]:
    module = view_class.__module__
    parts = module.split(".")
    name = parts[-1] if parts[-1] not in ("views", "api") else parts[0]
    doc = (sys.modules[module].__doc__ or "").strip().splitlines()
    return name, doc[0] if doc else ""


def _to_definitions(value):
    """OpenAPI 3 component references, rewritten to Swagger 2.0 definitions."""
    return json.loads(json.dumps(value).replace("#/components/schemas/", "#/definitions/"))


@lru_cache(maxsize=1)
def _openapi_document() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    try:
        return SchemaGenerator().get_schema(request=None, public=True) or {}
    except Exception:
        # Discovery still lists every path, method and scope without the parameter details.
        log.exception("could not build the OpenAPI schema for discovery")
        return {}


def _swagger_parameter(parameter: dict) -> dict:
    schema = parameter.get("schema") or {}
    result = {
        "name": parameter["name"],
        "in": parameter["in"],
        "required": bool(parameter.get("required", False)),
        "description": parameter.get("description", ""),
        "type": schema.get("type", "string") if schema.get("type") != "object" else "string",
    }
    if schema.get("enum"):
        result["enum"] = [value for value in schema["enum"] if value is not None]
    return result


def _json_schema(body: dict | None) -> dict | None:
    content = (body or {}).get("content") or {}
    media = content.get("application/json") or next(iter(content.values()), None)
    return _to_definitions(media["schema"]) if media and "schema" in media else None


def _operation(path: str, method: str, view_class: type, openapi_op: dict) -> dict:
    path_names = re.findall(r"{(\w+)}", path)
    parameters = [
        {"name": name, "in": "path", "required": True, "description": "", "type": "string"} for name in path_names
    ]
    documented = {p["name"]: p for p in openapi_op.get("parameters", [])}
    for parameter in parameters:
        parameter["description"] = documented.get(parameter["name"], {}).get("description", "")
    parameters += [_swagger_parameter(p) for p in openapi_op.get("parameters", []) if p.get("in") == "query"]
    body = _json_schema(openapi_op.get("requestBody"))
    if body is not None:
        parameters.append(
            {"name": "body", "in": "body", "required": True, "description": "Request body contents", "schema": body}
        )
    handler = getattr(view_class, method)
    nickname = (getattr(view_class, "nicknames", None) or {}).get(method.upper())
    operation = {
        "operationId": nickname or openapi_op.get("operationId") or f"{method}{view_class.__name__}",
        "description": (handler.__doc__ or "").strip(),
        "tags": [_tag(view_class)[0]],
        "parameters": parameters,
    }
    scope = required_scope(view_class, method)
    if scope:
        operation["security"] = [{OAUTH_SCHEME: [scope]}]
    error = {"schema": {"$ref": "#/definitions/ApiError"}}
    responses = {
        "400": {"description": "Bad Request", **error},
        "401": {"description": "Session required", **error},
        "403": {"description": "Unauthorized access", **error},
        "404": {"description": "Not found", **error},
    }
    openapi_responses = openapi_op.get("responses") or {}
    for code, answer in openapi_responses.items():
        if code.startswith("2"):
            responses[code] = {"description": answer.get("description") or "Successful invocation"}
            schema = _json_schema(answer)
            if schema is not None:
                responses[code]["schema"] = schema
    if not any(code.startswith("2") for code in responses):
        success = {"delete": ("204", "Deleted"), "post": ("201", "Successful creation")}
        code, description = success.get(method, ("200", "Successful invocation"))
        responses[code] = {"description": description}
    operation["responses"] = responses
    return operation


@lru_cache(maxsize=1)
def _paths_definitions_tags() -> tuple[dict, dict, list]:
    openapi = _openapi_document()
    openapi_paths = openapi.get("paths", {})
    definitions = _to_definitions(openapi.get("components", {}).get("schemas", {}))
    definitions["ApiError"] = API_ERROR
    paths: dict[str, dict] = {}
    tags: dict[str, str] = {}
    operation_ids: set[str] = set()
    for path, view_class in api_endpoints():
        if path in paths:  # an earlier pattern already answers this path
            continue
        tag, description = _tag(view_class)
        tags.setdefault(tag, description)
        entry = {"x-name": f"{view_class.__module__}.{view_class.__name__}", "x-path": path, "x-tag": tag}
        for method in METHODS:
            if method not in view_class.http_method_names or not hasattr(view_class, method):
                continue
            operation = _operation(path, method, view_class, openapi_paths.get(path, {}).get(method, {}))
            if operation["operationId"] in operation_ids:
                operation["operationId"] += f"_{len(operation_ids)}"
            operation_ids.add(operation["operationId"])
            entry[method] = operation
        paths[path] = entry
    ordered = dict(sorted(paths.items(), key=lambda item: (item[1]["x-tag"], item[0])))
    tag_list = [{"name": name, "description": tags[name]} for name in sorted(tags)]
    return ordered, definitions, tag_list


def swagger_document(request) -> dict:
    host = settings.SERVER_HOSTNAME or request.get_host()
    scheme = settings.PREFERRED_URL_SCHEME or request.scheme
    paths, definitions, tags = _paths_definitions_tags()
    return {
        "swagger": "2.0",
        "host": host,
        "basePath": "/",
        "schemes": [scheme],
        "info": {
            "version": "v1",
            "title": "Registry REST API",
            "description": (
                "Repositories, organizations, teams, robot accounts, permissions and usage logs of this "
                "registry, at the paths and with the payloads of Quay's /api/v1. The OpenAPI 3 form of "
                "the same API is at /api/v1/openapi.json and browsable at /api/v1/docs/."
            ),
        },
        "securityDefinitions": {
            OAUTH_SCHEME: {
                "type": "oauth2",
                "flow": "implicit",
                "authorizationUrl": f"{scheme}://{host}{AUTHORIZATION_PATH}",
                "scopes": dict(scopes.DESCRIPTIONS),
            }
        },
        "paths": paths,
        "definitions": definitions,
        "tags": tags,
    }


class DiscoveryView(ApiView):
    """Describe the API: every path, method and the OAuth scope each needs."""

    required_scopes = {"GET": None}
    nicknames = {"GET": "discovery"}

    @extend_schema(
        parameters=[OpenApiParameter("internal", OpenApiTypes.BOOL, description="Accepted for Quay clients")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        """List every endpoint of the API in the Swagger 2.0 format."""
        return Response(swagger_document(request))
