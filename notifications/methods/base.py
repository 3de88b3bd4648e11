"""What every delivery method has: config checking, the secrets it keeps, and sending.

A method's ``send`` returns an ``Outcome`` or raises a ``DeliveryError``: ``RetryableError``
when trying again later may work (the receiver is down, answered 500, timed out) and
``PermanentError`` when it cannot (the URL is refused by the outbound guard, the target user is
gone). The delivery service turns those into retries, failure counts and the delivery log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.template.loader import render_to_string

from notifications.events import EventKind, Message
from notifications.models import RepositoryNotification
from quay_site import outbound
from registry.models import Repository

EXCERPT_CHARS = 1024


class ConfigError(ValueError):
    """A method's config that cannot work; the message is shown to the API caller."""


class DeliveryError(Exception):
    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None, response_excerpt: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.response_excerpt = response_excerpt


class RetryableError(DeliveryError):
    retryable = True


class PermanentError(DeliveryError):
    retryable = False


@dataclass
class Outcome:
    status_code: int | None = None
    response_excerpt: str = ""


@dataclass
class Context:
    """One attempt of one delivery, as a method sees it."""

    notification: RepositoryNotification
    config: dict  # with the secrets, decrypted
    event: EventKind
    payload: dict
    delivery_uuid: str
    delivery_id: int | None
    is_test: bool

    @property
    def repository(self) -> Repository:
        return self.notification.repository

    @property
    def message(self) -> Message:
        return self.event.message(self.payload)

    def html(self) -> str:
        return render_to_string("notifications/message.html", {"message": self.message, "is_test": self.is_test})

    def text(self) -> str:
        return render_to_string("notifications/message.txt", {"message": self.message, "is_test": self.is_test})


class Method:
    """Base of the delivery methods; subclasses live one per module in this package."""

    name: str = ""
    # Config keys stored encrypted and never shown again in full.
    secret_fields: tuple[str, ...] = ()

    def clean(self, *, repository: Repository, config: dict) -> dict:
        """The config to store (secrets included), checked; raise ConfigError."""
        raise NotImplementedError

    def public(self, config: dict) -> dict:
        """The config as the API shows it: secret fields redacted or left out."""
        shown = {key: value for key, value in config.items() if key not in self.secret_fields}
        for key in self.secret_fields:
            if key in config and self.redact(key, config[key]) is not None:
                shown[key] = self.redact(key, config[key])
        return shown

    def redact(self, key: str, value) -> str | None:
        """How a secret field is shown after creation (None: not at all)."""
        return redact_token(str(value))

    def send(self, context: Context) -> Outcome:
        raise NotImplementedError


def redact_token(value: str) -> str:
    return "…" + value[-4:] if len(value) > 8 else "…"


def redact_url(value: str) -> str:
    """Enough of a URL to recognize it (scheme and host), not the token in its path."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "…"
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def required_string(config: dict, key: str, label: str, *, max_length: int = 2048) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"Missing {label}")
    value = value.strip()
    if len(value) > max_length:
        raise ConfigError(f"{label} is too long")
    return value


def checked_url(config: dict, key: str, label: str) -> str:
    url = required_string(config, key, label)
    try:
        outbound.check_url(url, resolve=True)
    except outbound.DestinationRefused as exc:
        raise ConfigError(f"{label}: {exc}") from None
    return url


def post_json(url: str, document, *, headers: dict | None = None, body: bytes | None = None, **kwargs) -> Outcome:
    """POST through the outbound guard; a non-2xx answer or a failed exchange is a retryable
    error, a refused destination a permanent one."""
    data = body if body is not None else json.dumps(document).encode()
    try:
        response = outbound.post_json(url, data, headers=headers, **kwargs)
    except outbound.DestinationRefused as exc:
        raise PermanentError(str(exc)) from None
    except outbound.OutboundFailed as exc:
        raise RetryableError(str(exc)) from None
    excerpt = response.text_excerpt(EXCERPT_CHARS)
    if 300 <= response.status < 400:
        location = response.headers.get("location", "")
        raise RetryableError(
            f"Answered {response.status} (redirects are not followed; Location: {location[:200]})",
            status_code=response.status,
            response_excerpt=excerpt,
        )
    if not response.ok:
        raise RetryableError(f"Answered {response.status}", status_code=response.status, response_excerpt=excerpt)
    return Outcome(status_code=response.status, response_excerpt=excerpt)
