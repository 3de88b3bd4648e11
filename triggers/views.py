"""The push webhook of build triggers: ``POST /webhooks/push/trigger/<uuid>``.

The caller proves itself with the trigger's webhook secret, in any of three places (the first
found wins):

- HTTP Basic ``$token:<secret>``: the credentials of the webhook URL View Credentials shows
  (``https://$token:<secret>@host/webhooks/push/trigger/<uuid>``), which curl and most hook
  runners turn into an Authorization header;
- an ``X-Trigger-Token: <secret>`` header;
- a ``?token=<secret>`` query parameter, for senders that can only be given a URL and drop
  credentials from it.

Answers (JSON): 200 when a build was queued or the push was skipped, 400 with the reason for a
bad request or payload, a disabled trigger or builds switched off, 403 for a missing or wrong
secret, 404 for an unknown trigger, 429 when the namespace's build queue is full, 503 while the
repository is read-only.
"""

from __future__ import annotations

import base64
import binascii
import json

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from builds.errors import BuildError, BuildsDisabled
from triggers import selectors, services
from triggers.metadata import PayloadError
from triggers.models import BuildTrigger


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"status": status, "error_message": message}, status=status)


def presented_secret(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, _, password = decoded.partition(":")
        return password if username == services.WEBHOOK_USERNAME and password else None
    return request.META.get("HTTP_X_TRIGGER_TOKEN") or request.GET.get("token") or None


@csrf_exempt
@require_POST
def push_webhook(request, trigger_uuid: str):
    trigger = selectors.trigger_by_uuid(trigger_uuid=trigger_uuid)
    if trigger is None or trigger.service != BuildTrigger.Service.CUSTOM_GIT:
        # Provider triggers have their own signed receivers (/webhooks/<service>/trigger/<uuid>).
        # Knowing that a uuid exists gives nothing away: the secret is what protects a trigger.
        return _error(404, "No such build trigger")
    if not services.webhook_secret_matches(trigger, presented_secret(request)):
        return _error(403, "Missing or wrong webhook secret")
    content_type = request.content_type or ""
    if content_type.lower() != "application/json":
        return _error(400, "The request needs a Content-Type header of application/json")
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(400, "The payload is too large")
    if not body:
        return _error(400, "Missing expected payload")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"The payload is not valid JSON: {exc}")
    try:
        build = services.trigger_fire(trigger=trigger, payload=payload)
    except PayloadError as exc:
        return _error(400, f"Invalid payload: {exc}")
    except services.TriggerError as exc:
        return _error(exc.status, str(exc))
    except BuildsDisabled as exc:
        # The builds API hides itself with a 404; a hook author would read that as a wrong URL.
        return _error(400, str(exc))
    except BuildError as exc:
        return _error(exc.status, str(exc))
    if build is None:
        return JsonResponse({"status": 200, "skipped": True, "build_id": None})
    return JsonResponse({"status": 200, "skipped": False, "build_id": str(build.uuid)})


# ---------------------------------------------------------------------------------------------
# GitHub, GitLab and Bitbucket


@csrf_exempt
@require_POST
def provider_webhook(request, service: str, trigger_uuid: str):
    """``POST /webhooks/<github|gitlab|bitbucket>/trigger/<uuid>``: a provider's push delivery.

    Verified by the provider's own scheme (GitHub ``X-Hub-Signature-256``, GitLab
    ``X-Gitlab-Token``, Bitbucket ``X-Hub-Signature``). Answers 200 for a queued build and for
    everything that builds nothing on purpose (ping, other events, deleted refs, skip markers,
    filtered refs, a replayed delivery id: ``"duplicate": true``), so that providers do not
    mark the hook as failing; 400 bad payload, 403 bad signature, 404 unknown trigger, 429 queue
    full, 503 read-only repository.
    """
    trigger = selectors.trigger_by_uuid(trigger_uuid=trigger_uuid)
    if trigger is None or trigger.service != service:
        return _error(404, "No such build trigger")
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(400, "The payload is too large")
    try:
        result = services.trigger_webhook_receive(trigger=trigger, service=service, meta=request.META, body=body)
    except PayloadError as exc:
        return _error(400, f"Invalid payload: {exc}")
    except services.TriggerError as exc:
        return _error(exc.status, str(exc))
    except BuildsDisabled as exc:
        return _error(400, str(exc))
    except BuildError as exc:
        return _error(exc.status, str(exc))
    if result.build is None:
        return JsonResponse(
            {
                "status": 200,
                "skipped": True,
                "build_id": None,
                "reason": result.skipped_reason,
                "duplicate": result.duplicate,
            }
        )
    return JsonResponse({"status": 200, "skipped": False, "build_id": str(result.build.uuid), "duplicate": False})


def _page(status: int, title: str, message: str) -> HttpResponse:
    # A browser lands here: a small page, escaped, no scripts (the site's CSP applies).
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>"
    )
    return HttpResponse(body, status=status, content_type="text/html; charset=utf-8")


def setup_page_url(trigger) -> str:
    """Where the browser goes once connected: the repository's builds tab, which continues the
    setup of the trigger named in ``trigger_setup``."""
    repository = trigger.repository
    return f"/repository/{repository.namespace.name}/{repository.name}?tab=builds&trigger_setup={trigger.uuid}"


@require_GET
def oauth_callback(request, service: str):
    """``GET /oauth2/<github|gitlab|bitbucket>/callback``: the provider sends the user back with
    ``code`` and ``state`` (or ``error``). The token is stored on the trigger the state names,
    then the browser goes on to the trigger setup."""
    if request.GET.get("error"):
        reason = request.GET.get("error_description") or request.GET["error"]
        return _page(400, "Not connected", f"The provider did not grant access: {reason}")
    user = request.user if getattr(request, "user", None) is not None and request.user.is_authenticated else None
    try:
        trigger, return_to = services.trigger_connect_finish(
            service=service,
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
            session_user=user,
        )
    except services.TriggerError as exc:
        return _page(exc.status, "Not connected", str(exc))
    return HttpResponseRedirect(return_to or setup_page_url(trigger))
