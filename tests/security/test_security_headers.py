"""Security headers on every response (issue #13 item 5): each URL pattern of the project is
requested, anonymously and signed in, and every answer (page, JSON, error, redirect, bytes)
carries a Content-Security-Policy, X-Frame-Options, X-Content-Type-Options and a Referrer-Policy.
Patterns come from the URL configuration, so a new endpoint is covered without an entry here."""

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from tests.conftest import PASSWORD

REQUIRED = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

# Values tried, in order, for a path parameter until one matches its converter's pattern.
CANDIDATES = (
    "alice/private",
    "latest",
    "sha256:" + "a" * 64,
    "1",
    str(uuid.UUID(int=1)),
    "acme",
    "x",
)
ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")


def _fill_route(text: str, converters: dict) -> str:
    def value(match):
        converter = converters.get(match.group("name"))
        regex = getattr(converter, "regex", "[^/]+")
        for candidate in CANDIDATES:
            if re.fullmatch(regex, candidate):
                return candidate
        return "x"

    return ROUTE_PARAM.sub(value, text)


def _fill_regex(text: str) -> str:
    def value(match):
        for candidate in CANDIDATES:
            if re.fullmatch(match.group("body"), candidate):
                return candidate
        return "x"

    return REGEX_GROUP.sub(value, text).lstrip("^").rstrip("$").replace("\\", "")


def _paths(patterns=None, prefix="") -> list[str]:
    paths = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        pattern = entry.pattern
        if isinstance(pattern, RoutePattern):  # a path() route
            part = _fill_route(str(pattern), pattern.converters)
        else:
            part = _fill_regex(pattern.regex.pattern)
        if isinstance(entry, URLResolver):
            paths.extend(_paths(entry.url_patterns, prefix + part))
        elif isinstance(entry, URLPattern):
            paths.append("/" + prefix + part)
    return sorted(set(paths))


PATHS = _paths()


def test_it_walks_every_part_of_the_project():
    prefixes = {"/v2/", "/api/v1/", "/admin/", "/c1/squash/", "/webhooks/", "/filedrop/", "/repository/"}
    assert all(any(path.startswith(prefix) for path in PATHS) for prefix in prefixes), prefixes
    assert len(PATHS) > 150


def _check(response, path):
    missing = {name: value for name, value in REQUIRED.items() if response.headers.get(name) != value}
    assert not missing, f"{path} answered {response.status_code} without {missing}"
    policy = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy, f"{path} answered {response.status_code} with CSP {policy!r}"


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_every_response_carries_the_security_headers(db, alice, signed_in):
    client = Client()
    if signed_in:
        assert client.login(username="alice", password=PASSWORD)
    for path in PATHS:
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            _check(response, f"{method.upper()} {path}")
            if response.streaming:
                # Read through the test client's wrapper, which closes the response without
                # firing close_old_connections (that would close the test's PostgreSQL connection).
                b"".join(response.streaming_content)


def test_unknown_paths_carry_them_too(db):
    client = Client()
    for path in ("/no/such/page", "/v2/no/such/endpoint/x", "/api/v1/nothing-here"):
        response = client.get(path)
        assert response.status_code == 404, path
        _check(response, path)


def test_hsts_is_sent_over_https_when_switched_on(db, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    client = Client()
    assert client.get("/signin", secure=True).headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get("/signin").headers
