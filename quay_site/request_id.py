"""One id per request, in every log line the request causes, here and in the tasks it queues.

The web middleware takes the client's (or proxy's) ``X-Request-ID`` when it is a sane token, or
makes one, sets it for the request's log records (quay_site.logs.request_id) and returns it in
the response's ``X-Request-ID``. Celery carries it as a message header: tasks queued while a
request (or a task) runs get it, and the worker sets it around the task, so the worker's lines
for that task carry the same id. The websocket process does the same per connection.

The middleware runs on every /v2/ request (a benchmarked path): one regex match or a counter, one
context variable set, one header.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets

from celery import signals

from quay_site.logs import request_id

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
ASGI_HEADER = b"x-request-id"
# The Celery message header (a name of our own, among Celery's).
TASK_HEADER = "quay_request_id"
# What a proxy or client may send: ids of load balancers and tracers (uuid, hex, "Root=1-..."),
# bounded so that a log line cannot be flooded or forged through it.
_VALID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")


# Fresh ids: a random per-process prefix and a counter, 32 hex digits like a uuid4's hex. uuid4
# reads os.urandom on every call, which profiled at about 5% of a manifest GET; ids need to be
# unique, not secret. The prefix is redrawn in each forked process (keyed by pid).
_ids: tuple[int, str, itertools.count] = (0, "", itertools.count())


def _new_id() -> str:
    global _ids
    pid, prefix, counter = _ids
    if pid != os.getpid():
        pid, prefix, counter = _ids = (os.getpid(), secrets.token_hex(8), itertools.count())
    return f"{prefix}{next(counter):016x}"


def accepted_or_new(incoming: str | None) -> str:
    """The incoming id when it is acceptable, else a fresh one (32 hex digits)."""
    if incoming and _VALID.fullmatch(incoming):
        return incoming
    return _new_id()


class RequestIdMiddleware:
    """First in MIDDLEWARE: every later middleware and view logs under the request's id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        value = accepted_or_new(request.META.get(META_KEY))
        request.request_id = value
        token = request_id.set(value)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[HEADER] = value
        return response


class RequestIdASGIMiddleware:
    """The same for websocket connections (Daphne): one id per connection, for its lifetime."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        incoming = next((v for k, v in scope.get("headers", ()) if k == ASGI_HEADER), b"")
        token = request_id.set(accepted_or_new(incoming.decode("latin-1")))
        try:
            return await self.app(scope, receive, send)
        finally:
            request_id.reset(token)


# ---------------------------------------------------------------------------------------------
# Celery: the id travels with the task message.

_task_tokens: dict[str, object] = {}


@signals.before_task_publish.connect(weak=False)
def _add_request_id(headers=None, **kwargs):
    value = request_id.get()
    if value and headers is not None:
        headers[TASK_HEADER] = value


@signals.task_prerun.connect(weak=False)
def _enter_task(task_id=None, task=None, **kwargs):
    value = task.request.get(TASK_HEADER) if task is not None else None
    # Eager tasks run inside the caller, whose id already applies (and they carry no header).
    if value and task_id:
        _task_tokens[task_id] = request_id.set(accepted_or_new(value))


@signals.task_postrun.connect(weak=False)
def _leave_task(task_id=None, **kwargs):
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            request_id.reset(token)
        except ValueError:  # set in another context (a pool that switched threads): just clear it
            request_id.set("")
