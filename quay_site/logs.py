"""Log formatting shared by every process: text or JSON lines, the request id, secret redaction.

``LOG_FORMAT`` (settings) picks ``text`` (the default, one readable line) or ``json`` (one object a
line). Both carry the id of the HTTP request (or the Celery task a request queued) the record was
logged under, read from ``request_id`` below (set by quay_site/request_id.py).

Every handler the project configures has :class:`RedactFilter`: a safety net that scrubs
``Authorization`` values, ``password=``/``token=``/``secret=``-like pairs, bearer and basic
credentials, JWTs, PEM private keys, Fernet tokens, webhook secrets and URL passwords from the message, its
arguments and the traceback before anything is written. Code must still never log a secret:
random tokens (robot and app tokens) have no shape a filter could recognise.

Only the standard library here (every process imports it). The JSON formatter is ours rather than
python-json-logger: it is a few lines, and the final redaction pass over the whole line needs a
hook of our own anyway.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re

# The id of the request (or task) being handled in this thread or task; "" outside one.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

REDACTED = "[REDACTED]"

# A cheap first look: most log lines contain none of these, and skip the patterns below.
_MAYBE_SECRET = re.compile(
    r"private key|authoriz|bearer|basic|eyJ|gAAAAA|whsec_|://|passw|passphrase|secret|token|key|psk|credential"
    r"|signature|code=|state=|nonce=|sig=",
    re.IGNORECASE,
)

# A quoted value (whole, spaces included; to the end of the line when its closing quote was cut off,
# as in a truncated message) or a bare one up to a separator; never our own marker again, so that
# redacting twice gives the same text.
_VALUE = r"""(?:"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|(?!\[REDACTED)[^\s'",;&}\])]+)"""


def _keep_quotes(match: re.Match) -> str:
    value = match.group("value")
    opening = value[0] if value[:1] in ("'", '"') else ""
    closing = opening if opening and len(value) > 1 and value[-1] == opening else ""
    return f"{match.group('key')}{opening}{REDACTED}{closing}"


_PATTERNS: list[tuple[re.Pattern, object]] = [
    # PEM private keys: the whole block, or up to the end when the text is cut short.
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
        "[REDACTED PRIVATE KEY]",
    ),
    # Authorization header values, whatever the scheme: "Authorization: Basic x",
    # "'HTTP_AUTHORIZATION': 'Bearer x'", (b'authorization', b'Bearer x'). The scheme is kept.
    (
        re.compile(
            r"""(?P<key>(?>authorization['"]?\s*[:=,]\s*(?:b?['"])?(?:[A-Za-z][\w.-]*\s+(?=\S))?))(?P<value>(?!\[REDACTED)[^\s'",;}\])]+)""",
            re.IGNORECASE,
        ),
        r"\g<key>" + REDACTED,
    ),
    # Bearer and Basic credentials anywhere ("Basic authentication" is not one: no digit or capital;
    # the scheme's case is free, the value's is not).
    (re.compile(r"\b(Bearer)\s+(?!\[REDACTED)[A-Za-z0-9._~+/-]{8,}=*", re.IGNORECASE), r"\1 " + REDACTED),
    (
        re.compile(r"\b((?i:basic))\s+(?=[A-Za-z0-9+/]*[A-Z0-9+/])(?!\[REDACTED)[A-Za-z0-9+/]{8,}={0,2}"),
        r"\1 " + REDACTED,
    ),
    # JWTs (registry tokens, Clair's, OAuth ID tokens): header.payload.signature, both JSON.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "[REDACTED JWT]"),
    # Webhook signing secrets (notifications/signing.py: Standard Webhooks' whsec_ + base64).
    (re.compile(r"\bwhsec_[A-Za-z0-9+/]{8,}={0,2}"), "whsec_" + REDACTED),
    # Fernet tokens (secrets stored encrypted: version byte 0x80 then a timestamp).
    (re.compile(r"\bgAAAAA[A-Za-z0-9_-]{40,}={0,2}"), "[REDACTED FERNET]"),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"""(\b[a-z][a-z0-9+.-]*://[^/\s:@'"]*:)(?!\[REDACTED)[^@\s/'"]+@""", re.IGNORECASE), r"\1[REDACTED]@"),
    # key=value and key: value pairs whose key names a secret (password=, client_secret:,
    # 'token': '...', X-Registry-Auth...). A quoted value is redacted whole.
    (
        re.compile(
            r"""(?P<key>\b[\w.-]*?(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key"""
            r"""|private[_-]?key|psk|credentials?|signature)[\w.-]*['"]?\s*[:=]\s*(?:b(?=['"]))?)(?P<value>"""
            + _VALUE
            + ")",
            re.IGNORECASE,
        ),
        _keep_quotes,
    ),
    # One-time codes and nonces in query strings (e-mail confirmation, OAuth callbacks).
    (re.compile(r"""([?&](?:code|state|nonce|sig)=)(?!\[REDACTED)[^&\s"'#]+""", re.IGNORECASE), r"\1" + REDACTED),
]


def redact(text: str) -> str:
    """``text`` with every credential-shaped part replaced; unchanged (same object) if none."""
    if not text or not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_exception_formatter = logging.Formatter()


class RedactFilter(logging.Filter):
    """Scrubs secrets from a record's message (with its arguments), traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format call: leave it to the formatter to report
            return True
        clean = redact(message)
        if clean is not message and clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RequestIdFilter(logging.Filter):
    """Puts the current request id on the record (unless the caller gave one in ``extra``).

    Django logs a 4xx/5xx response (``django.request``) after the middleware has returned, with
    the request in ``extra``: its id is taken from there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id.get() or getattr(getattr(record, "request", None), "request_id", "")
        return True


def _iso_utc(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``<ISO time UTC> <LEVEL> <logger> [<request id>] <message>``, redacted once more at the end."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%", **kwargs):
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s", datefmt, style)

    def formatTime(self, record, datefmt=None):
        return _iso_utc(record.created)

    def format(self, record: logging.LogRecord) -> str:
        given = getattr(record, "request_id", None)
        record.request_id = given or "-"
        try:
            return redact(super().format(record))
        finally:
            record.request_id = given


# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "request_id", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601 UTC), level, logger, message, request_id, process,
    the record's ``extra`` fields, and ``exception``/``stack`` as strings when present."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or None,
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: extras may be any object (Django's request, Celery's task context).
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


FORMATTERS = {"text": TextFormatter, "json": JsonFormatter}


def handler_settings(log_format: str) -> dict:
    """The pieces of a ``logging.config.dictConfig`` dict that settings.LOGGING uses."""
    if log_format not in FORMATTERS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATTERS)}, not {log_format!r}")
    return {
        "filters": {
            "request_id": {"()": "quay_site.logs.RequestIdFilter"},
            "redact": {"()": "quay_site.logs.RedactFilter"},
        },
        "formatters": {"default": {"()": f"quay_site.logs.{FORMATTERS[log_format].__name__}"}},
    }
