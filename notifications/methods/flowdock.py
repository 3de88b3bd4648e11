"""Flowdock: a message in a flow's team inbox (the Push API's team_inbox endpoint, authenticated
by the flow's API token as Quay does). NOTIFICATION_FLOWDOCK_URL points elsewhere than
api.flowdock.com (a compatible server, a test receiver)."""

from __future__ import annotations

import re
from urllib.parse import quote

from django.conf import settings

from notifications.methods.base import ConfigError, Context, Method, Outcome, post_json, required_string
from notifications.models import Method as MethodName

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")  # \Z: "$" would let a trailing newline through
# Flowdock accepts only letters, digits, underscores and spaces in ``source`` and ``project``.
NOT_ALLOWED_RE = re.compile(r"[^A-Za-z0-9_ ]+")
SOURCE = "Container registry"


def flowdock_message(context: Context) -> dict:
    message = context.message
    repository = context.repository
    return {
        "source": SOURCE,
        "from_address": settings.DEFAULT_FROM_EMAIL,
        "from_name": repository.namespace.name,
        "subject": ("[test] " if context.is_test else "") + message.summary,
        "content": context.html(),
        "project": NOT_ALLOWED_RE.sub(" ", repository.full_name).strip()[:100],
        "tags": [f"#{context.event.name}"],
        "link": message.link,
    }


class FlowdockMethod(Method):
    name = MethodName.FLOWDOCK
    secret_fields = ("flow_api_token",)

    def clean(self, *, repository, config):
        token = required_string(config, "flow_api_token", "Flowdock API token", max_length=255)
        if not TOKEN_RE.match(token):
            raise ConfigError("The Flowdock API token has characters a token never has")
        return {"flow_api_token": token}

    def send(self, context: Context) -> Outcome:
        base = settings.NOTIFICATION_FLOWDOCK_URL.rstrip("/")
        url = f"{base}/v1/messages/team_inbox/{quote(context.config['flow_api_token'], safe='')}"
        return post_json(url, flowdock_message(context))
