"""The token endpoint shuts out password guessing, not clients that log in correctly."""

import uuid

from django.test import Client

from tests.conftest import PASSWORD, basic


def _client():
    # A made-up address per test: the counter is per client address in the shared cache.
    return Client(REMOTE_ADDR=f"198.51.100.{uuid.uuid4().int % 250 + 1}")


def test_it_answers_429_after_too_many_failed_logins(alice, settings):
    settings.LOGIN_FAILURES_PER_WINDOW = 3
    client = _client()
    wrong = {"HTTP_AUTHORIZATION": basic("alice", "wrong")}
    assert [client.get("/v2/auth?service=testserver", **wrong).status_code for _ in range(3)] == [401] * 3
    response = client.get("/v2/auth?service=testserver", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert int(response["Retry-After"]) == settings.LOGIN_FAILURE_WINDOW_SECONDS
    # Anonymous tokens (public pulls) are never refused.
    assert client.get("/v2/auth?service=testserver").status_code == 200


def test_successful_logins_are_not_counted(alice, settings):
    settings.LOGIN_FAILURES_PER_WINDOW = 3
    client = _client()
    good = {"HTTP_AUTHORIZATION": basic("alice", PASSWORD)}
    assert all(client.get("/v2/auth?service=testserver", **good).status_code == 200 for _ in range(6))
