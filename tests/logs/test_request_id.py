"""The request id: the middleware, its way into Celery task messages and back out in the
worker, and the websocket process's per-connection id (quay_site/request_id.py)."""

import asyncio
import logging
import re

import pytest
from celery import signals
from django.test import RequestFactory

from quay_site import logs
from quay_site.celery import app
from quay_site.request_id import TASK_HEADER, RequestIdASGIMiddleware, RequestIdMiddleware

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/v2/", "/api/v1/discovery", "/no/such/page"])
def test_every_response_carries_a_fresh_id(client, path):
    first = client.get(path)["X-Request-ID"]
    second = client.get(path)["X-Request-ID"]
    assert HEX_ID.fullmatch(first) and HEX_ID.fullmatch(second) and first != second


@pytest.mark.django_db
def test_a_sane_incoming_id_is_kept_and_others_replaced(client):
    assert client.get("/v2/", HTTP_X_REQUEST_ID="Root=1-67891233-abcdef012345")["X-Request-ID"] == (
        "Root=1-67891233-abcdef012345"
    )
    for bad in ("x" * 129, "two words", "new\nline", 'quote"d', ""):
        assert HEX_ID.fullmatch(client.get("/v2/", HTTP_X_REQUEST_ID=bad)["X-Request-ID"])


def test_everything_logged_during_the_request_has_its_id():
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append((record.getMessage(), record.request_id))

    handler = Collect()
    handler.addFilter(logs.RequestIdFilter())
    logger = logging.getLogger("tests.logs.request")
    logger.addHandler(handler)
    try:

        def view(request):
            logger.warning("inside the view")
            from django.http import HttpResponse

            return HttpResponse("ok")

        response = RequestIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID="given-id-1"))
        logger.warning("after the request")
    finally:
        logger.removeHandler(handler)
    assert response["X-Request-ID"] == "given-id-1"
    assert seen == [("inside the view", "given-id-1"), ("after the request", "")]


@pytest.mark.django_db
def test_django_s_error_response_lines_carry_the_id(client):
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.request_id)

    handler = Collect(level=logging.WARNING)
    handler.addFilter(logs.RequestIdFilter())
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # settings keep 4xx quiet; Django logs them the same way as 5xx
    try:
        # Logged by Django after the middleware returned.
        response = client.post("/csrf_token", HTTP_X_REQUEST_ID="error-id-1")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert response.status_code == 405
    assert seen == ["error-id-1"]


def test_a_task_queued_under_a_request_carries_its_id_to_the_worker():
    """Published through Celery's own publish path (signals included), then run the way a worker
    runs it: the task sees the id while it runs, and nothing after."""
    seen = {}

    @app.task(name="tests.logs.record_request_id", bind=True, ignore_result=True)
    def record(self):
        seen["inside"] = logs.request_id.get()

    task = app.tasks[record.name]

    published = {}

    def capture(headers=None, **kwargs):
        published.update(headers)

    signals.before_task_publish.connect(capture)
    token = logs.request_id.set("queued-under-1")
    try:
        # An in-memory broker: the message is only looked at, never consumed.
        with app.connection_for_write("memory://") as connection:
            task.apply_async(producer=app.amqp.Producer(connection))
    finally:
        logs.request_id.reset(token)
        signals.before_task_publish.disconnect(capture)
    assert published[TASK_HEADER] == "queued-under-1"

    # The worker side: Celery's tracer with the message's headers as the task's request.
    from celery.app.trace import build_tracer

    tracer = build_tracer(task.name, task, eager=False, propagate=True, app=app)
    tracer("task-id-1", (), {}, {"id": "task-id-1", TASK_HEADER: published[TASK_HEADER]})
    assert seen["inside"] == "queued-under-1"
    assert logs.request_id.get() == ""


def test_websocket_connections_get_an_id_each():
    seen = []

    async def consumer(scope, receive, send):
        seen.append(logs.request_id.get())

    middleware = RequestIdASGIMiddleware(consumer)
    asyncio.run(middleware({"type": "websocket", "headers": [(b"x-request-id", b"ws-conn-1")]}, None, None))
    asyncio.run(middleware({"type": "websocket", "headers": []}, None, None))
    assert seen[0] == "ws-conn-1" and HEX_ID.fullmatch(seen[1])
    assert logs.request_id.get() == ""
