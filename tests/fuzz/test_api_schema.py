"""Schemathesis against the OpenAPI schema of /api/v1, in process (WSGI), finding no 5xx.

Every operation of the schema drf-spectacular generates is called with generated parameters and
bodies (valid and invalid ones, NUL characters included) by alice, who administers organization
``acme`` and its repository ``acme/app`` (a bearer token with every scope), and the superuser
endpoints by ``root``. Path parameters are, for most examples, the names of the fixtures, so
the calls reach the views' logic rather than stopping at 404.

Each example runs in a savepoint rolled back afterwards: every call sees the same data, whatever
the previous one deleted. Required: no server error. Conformance of the answers to the schema is
checked too and reported as warnings (``FUZZ_SCHEMA_STRICT=1`` makes them failures).
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zlib

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from hypothesis import settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from accounts import scopes
from accounts import services as account_services
from registry.permissions import Principal
from tests.fuzz.conftest import examples
from tests.registry.conftest import make_image, store_image
from tests.registry_rest.conftest import world  # noqa: F401  (fixture)

STRICT = os.environ.get("FUZZ_SCHEMA_STRICT") == "1"


def _schema_document() -> dict:
    document = SchemaGenerator().get_schema(request=None, public=True)
    # Through JSON, as a client reads /api/v1/openapi.json (lazy strings become plain text).
    return json.loads(json.dumps(document, default=str))


DOCUMENT = _schema_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(max_examples=examples(25))
# The coverage phase (boundary values of every parameter and body field, some 60 calls per
# operation) runs with the longer profiles only: CI stays at a few calls per operation. Methods the
# schema does not list are left out (Django answers 405 to them, always).
schema.config.phases.coverage.enabled = os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci"
schema.config.phases.coverage.unexpected_methods = set()
APP = WSGIHandler()


class Cast:
    """Names of the fixture objects, by path parameter, and the callers' tokens."""

    def __init__(self, world, digest: str, alice_token: str, root_token: str):  # noqa: F811
        self.alice_token = alice_token
        self.root_token = root_token
        self.known = {
            "orgname": ["acme"],
            "repository": ["acme/app"],
            "username": ["bob", "charlie", "acme+bot"],
            "membername": ["bob", "charlie"],
            "teamname": ["devs", "builders"],
            "robot_shortname": ["bot"],
            "tag": ["latest"],
            "manifestref": [digest],
            "prefix": ["a", "acme"],
            "name": ["acme", "alice"],
            "namespace": ["acme"],
        }

    def fill(self, case) -> None:
        """Replace generated path parameters by known names in most examples (chosen by the
        example itself, so hypothesis can still replay and shrink it)."""
        params = case.path_parameters or {}
        seed = zlib.crc32(repr(sorted(params.items())).encode())
        if not params or seed % 4 == 0:
            return
        for key in params:
            if key in self.known:
                choices = self.known[key]
                params[key] = choices[seed % len(choices)]


@pytest.fixture
def cast(world):  # noqa: F811
    alice_principal = Principal(kind="user", user=world.alice)
    image = store_image(world.app, "latest", make_image("schema"), alice_principal)
    _, alice_token = account_services.oauth_token_create(user=world.alice, scopes=scopes.ALL)
    _, root_token = account_services.oauth_token_create(user=world.root, scopes=scopes.ALL)
    return Cast(world, image.digest, alice_token, root_token)


@pytest.fixture
def in_process_app():
    """Django's test client keeps the test's connection open across requests; calling the WSGI
    handler directly, the same is needed (the test's transaction lives on that connection)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield APP
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=examples(25), deadline=None)
def test_api_v1_has_no_server_errors(case, cast, in_process_app):
    cast.fill(case)
    token = cast.root_token if "/superuser/" in case.path else cast.alice_token
    headers = {"Authorization": f"Bearer {token}"}
    with transaction.atomic():
        response = case.call(app=in_process_app, headers=headers)
        transaction.set_rollback(True)
    case.validate_response(response, checks=[not_a_server_error], headers=headers)
    if response.status_code < 500:
        try:
            case.validate_response(response, checks=[response_schema_conformance], headers=headers)
        except FailureGroup as exc:
            if STRICT:
                raise
            warnings.warn(f"{case.method} {case.path}: answer differs from the schema: {str(exc)[:500]}", stacklevel=1)


def _nul_variants(document: dict):
    """(method, path, query) for every operation: each path parameter in turn, then every query
    parameter at once, given a value with a NUL character (PostgreSQL refuses such text)."""
    for template, entry in document["paths"].items():
        for method, operation in entry.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = [p for p in operation.get("parameters", []) + entry.get("parameters", []) if "$ref" not in p]
            path_names = [p["name"] for p in params if p["in"] == "path"]
            query_names = [p["name"] for p in params if p["in"] == "query"]
            for poisoned in path_names:
                yield method, template, {poisoned: "a\x00b"}, {}
            if query_names:
                yield method, template, {}, {name: "a\x00b" for name in query_names}


def test_api_v1_refuses_nul_characters_without_server_errors(cast, in_process_app):
    """Every operation, with NUL in a path or query parameter: an answer in Quay's error format
    (or a success), never a 500. Deterministic; schemathesis reaches such values only rarely."""
    from urllib.parse import quote, urlencode

    from django.test import Client

    client = Client(raise_request_exception=False)
    failures = []
    for method, template, path_values, query in _nul_variants(DOCUMENT):
        url = template
        for name, choices in cast.known.items():
            url = url.replace("{" + name + "}", quote(path_values.get(name, choices[0]), safe="/"))
        for name, value in path_values.items():
            url = url.replace("{" + name + "}", quote(value))
        url = re.sub(r"\{[^}]+\}", "x", url)
        token = cast.root_token if "/superuser/" in template else cast.alice_token
        with transaction.atomic():
            response = getattr(client, method)(
                url + ("?" + urlencode(query) if query else ""),
                data="{}" if method in ("post", "put", "patch") else None,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            transaction.set_rollback(True)
        if response.status_code >= 500:
            failures.append(f"{method.upper()} {url} {query}: {response.status_code}")
        elif response.status_code >= 400 and response.get("Content-Type", "").startswith("application/json"):
            body = response.json()
            assert body.get("status") == response.status_code and body.get("error_message"), (url, body)
    assert not failures, "\n".join(failures)
