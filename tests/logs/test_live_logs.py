"""The logs of a live server (``manage.py serve`` with its Celery worker) at DEBUG, as JSON, with
the access log on, after logins and pulls with every kind of credential, a webhook with a secret
and a test delivery: no secret in them, every line JSON, and one request id from the response
header through the access log to the worker's lines for the task the request queued."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests

from notifications import signing
from tests.e2e.conftest import PASSWORD, LiveRegistry, live_server
from tests.logs.plugin import register_secret
from tests.notifications.receivers import Receiver

pytestmark = pytest.mark.e2e

WRONG_PASSWORD = "not-the-password-8d1f"
JSON_FIELDS = {"time", "level", "logger", "message", "request_id", "process"}


class LoggingRegistry(LiveRegistry):
    # With the Celery worker: the test follows a request into a task.
    serve_args = ("--no-builder",)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from live_server(
        tmp_path_factory,
        "logs",
        LoggingRegistry,
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
        ACCESS_LOG="1",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32",
        GC_INTERVAL_SECONDS="0",
    )


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.stop()


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def wait_for_line(server, predicate, what: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = [entry for entry in json_lines(server.log()) if predicate(entry)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line {what}:\n{server.log()[-5000:]}")
        time.sleep(0.3)


def test_no_secret_reaches_the_logs_and_one_id_follows_a_request(server, receiver):
    url = server.url
    secrets = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "robot token": server.seed["robot_token"],
        "app token": server.seed["app_token"],
    }
    oauth_token = server.shell(
        "from accounts import scopes, services\nfrom accounts.models import User\n"
        "_, token = services.oauth_token_create(user=User.objects.get(username='alice'), scopes=scopes.ALL)\n"
        "print('TOKEN ' + token)"
    )
    secrets["OAuth token"] = next(line[6:] for line in oauth_token.splitlines() if line.startswith("TOKEN "))

    # Registry logins with each kind of credential, and one that fails.
    scope = "repository:alice/public-images:pull"
    for username, password in [
        ("alice", PASSWORD),
        (server.seed["robot"], server.seed["robot_token"]),
        ("$app", server.seed["app_token"]),
        ("$oauthtoken", secrets["OAuth token"]),
    ]:
        secrets[f"registry token of {username}"] = server.token(scope, username=username, password=password)
    refused = requests.get(
        f"{url}/v2/auth", params={"service": server.host, "scope": scope}, auth=("alice", WRONG_PASSWORD), timeout=30
    )
    assert refused.status_code == 401
    # Pulls with a bearer token (the tag list, a missing manifest).
    bearer = {"Authorization": "Bearer " + secrets["registry token of alice"]}
    assert requests.get(f"{url}/v2/alice/public-images/tags/list", headers=bearer, timeout=30).status_code == 200
    assert requests.get(f"{url}/v2/alice/public-images/manifests/nope", headers=bearer, timeout=30).status_code == 404
    # A web sign-in with the password, a wrong one, and basic auth on the REST API.
    session = requests.Session()
    csrf = session.get(f"{url}/csrf_token", timeout=30).json()["csrf_token"]
    for password, status in [(WRONG_PASSWORD, 403), (PASSWORD, 200)]:
        response = session.post(
            f"{url}/api/v1/signin",
            json={"username": "alice", "password": password},
            headers={"X-CSRF-Token": csrf},
            timeout=30,
        )
        assert response.status_code == status, response.text
        csrf = response.headers.get("X-Next-CSRF-Token", csrf)
    requests.get(f"{url}/api/v1/user/", auth=("alice", PASSWORD), timeout=30)

    # A webhook with a signing secret and a secret in its URL's query, then a test delivery.
    api = {"Authorization": f"Bearer {secrets['OAuth token']}"}
    secrets["webhook secret"] = signing.secret_generate()
    secrets["webhook URL token"] = f"hook-token-{uuid.uuid4().hex}"
    hook_url = receiver.url(f"/hook?token={secrets['webhook URL token']}")
    created = requests.post(
        f"{url}/api/v1/repository/alice/public-images/notification/",
        json={
            "event": "repo_push",
            "method": "webhook",
            "config": {"url": hook_url, "secret": secrets["webhook secret"]},
            "eventConfig": {},
            "title": "logs",
        },
        headers=api,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    for name, value in secrets.items():
        register_secret(value, f"{name} (tests/logs/test_live_logs.py)")

    request_id = f"logs-test-{uuid.uuid4().hex}"
    queued = requests.post(
        f"{url}/api/v1/repository/alice/public-images/notification/{created.json()['uuid']}/test",
        headers={**api, "X-Request-ID": request_id},
        timeout=30,
    )
    assert queued.status_code == 200, queued.text
    assert queued.headers["X-Request-ID"] == request_id
    (delivered,) = receiver.wait_for(1, timeout=60)
    assert signing.verify(secret=secrets["webhook secret"], headers=delivered.headers, body=delivered.body)

    # One id from the response header to the access log and the worker's line for the task.
    access = wait_for_line(
        server, lambda e: e["logger"] == "gunicorn.access" and e["request_id"] == request_id, "of the access log"
    )
    assert access["http"]["method"] == "POST" and access["http"]["status"] == "200"
    worker = wait_for_line(
        server,
        lambda e: e["logger"].startswith("celery") and e["request_id"] == request_id and "succeeded" in e["message"],
        "of the worker for the queued delivery",
    )
    assert worker["process"] != access["process"]
    plain = requests.get(f"{url}/v2/", timeout=30)
    generated = plain.headers["X-Request-ID"]
    wait_for_line(server, lambda e: e["logger"] == "gunicorn.access" and e["request_id"] == generated, "for /v2/")

    # Every log line is JSON (what else the processes print, their banners, is not a log line).
    text = server.log()
    entries = json_lines(text)
    assert len(entries) > 50
    for entry in entries:
        assert JSON_FIELDS <= set(entry), entry
    loggers = {entry["logger"] for entry in entries}
    assert {"gunicorn.access", "gunicorn.error", "celery.app.trace"} <= loggers, loggers
    assert any(entry["level"] == "DEBUG" for entry in entries)

    # None of the secrets, in clear or as a basic-auth value.
    for name, value in secrets.items():
        assert value not in text, f"the {name} is in the server's log"
    for username, password in [("alice", PASSWORD), ("alice", WRONG_PASSWORD), ("$app", server.seed["app_token"])]:
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
        assert encoded not in text, f"the basic credentials of {username} are in the server's log"
