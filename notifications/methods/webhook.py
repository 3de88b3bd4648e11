"""Webhook POST: the event's JSON (or the admin's JSON template filled from it), signed.

Signed the Standard Webhooks way (notifications/signing.py) with a secret generated at creation
and shown only in the creation answer. Over HTTPS the request presents the server's client
certificate when NOTIFICATION_TLS_CERT_FILE is set (the guide: it proves the call came from the
registry). 2xx is success; anything else, a redirect included, is retried.
"""

from __future__ import annotations

import json
import re

from django.conf import settings

from notifications import signing
from notifications.methods.base import ConfigError, Context, Method, Outcome, checked_url, post_json
from notifications.models import Method as MethodName

TEMPLATE_MAX = 16384
# ``${path}`` in a template: dotted keys with optional list indexes (``${updated_tags[0]}``).
PLACEHOLDER_RE = re.compile(r"\$\{\s*([A-Za-z_][\w-]*(?:\[\d+\])*(?:\.[A-Za-z_][\w-]*(?:\[\d+\])*)*)\s*\}")
STEP_RE = re.compile(r"([A-Za-z_][\w-]*)|\[(\d+)\]")


def _lookup(payload, path: str):
    value = payload
    for key, index in STEP_RE.findall(path):
        if key:
            value = value.get(key) if isinstance(value, dict) else None
        else:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
    return value


def _fill(node, payload):
    if isinstance(node, dict):
        return {key: _fill(value, payload) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, payload) for item in node]
    if isinstance(node, str):
        whole = PLACEHOLDER_RE.fullmatch(node.strip())
        if whole:
            # A placeholder alone keeps the value's JSON type (a list stays a list).
            return _lookup(payload, whole.group(1))

        def text(match):
            value = _lookup(payload, match.group(1))
            if value is None:
                return ""
            return value if isinstance(value, str) else json.dumps(value)

        return PLACEHOLDER_RE.sub(text, node)
    return node


def parse_template(template):
    """Quay's webhook template: JSON (given as a string or as JSON) with ``${...}`` placeholders."""
    if isinstance(template, str):
        if len(template) > TEMPLATE_MAX:
            raise ConfigError("The template is too long")
        try:
            return json.loads(template)
        except ValueError as exc:
            raise ConfigError(f"The template is not valid JSON: {exc}") from None
    if isinstance(template, dict | list):
        if len(json.dumps(template)) > TEMPLATE_MAX:
            raise ConfigError("The template is too long")
        return template
    raise ConfigError("The template must be JSON")


def render_body(payload: dict, template) -> bytes:
    document = payload if template in (None, "") else _fill(parse_template(template), payload)
    return json.dumps(document).encode()


class WebhookMethod(Method):
    name = MethodName.WEBHOOK
    secret_fields = ("secret",)

    def clean(self, *, repository, config):
        cleaned = {"url": checked_url(config, "url", "Webhook URL")}
        template = config.get("template")
        if template not in (None, ""):
            parse_template(template)
            cleaned["template"] = template
        secret = config.get("secret")
        if secret in (None, ""):
            secret = signing.secret_generate()
        try:
            signing.secret_key(secret)
        except signing.SecretError as exc:
            raise ConfigError(str(exc)) from None
        cleaned["secret"] = secret
        return cleaned

    def redact(self, key, value):
        return None  # shown once, in the creation answer

    def send(self, context: Context) -> Outcome:
        config = context.config
        body = render_body(context.payload, config.get("template"))
        headers = signing.headers(secret=config["secret"], message_id=context.delivery_uuid, body=body)
        client_cert = None
        if config["url"].lower().startswith("https:") and settings.NOTIFICATION_TLS_CERT_FILE:
            client_cert = (settings.NOTIFICATION_TLS_CERT_FILE, settings.NOTIFICATION_TLS_KEY_FILE or None)
        return post_json(config["url"], None, body=body, headers=headers, client_cert=client_cert)
