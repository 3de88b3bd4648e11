"""The log formatters and the redaction filter (quay_site/logs.py)."""

import io
import json
import logging
import re

import pytest

from quay_site import logs

# Planted values for these tests only: they reach no handler of the run (see _logger below).
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImFjY2VzcyI6W119."
    "c2lnbmF0dXJlLWJ5dGVzLWhlcmUtdGhhdC1hcmUtbG9uZw"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----"
FERNET = "gAAAAABlZ2xvZ2dpbmctaXMtZnVuLWJ1dC1zZWNyZXRzLWFyZS1ub3QtZm9yLWxvZ3M="
BASIC = "YWxpY2U6aHVudGVyMg=="  # alice:hunter2


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer sometoken1234567890", "sometoken1234567890"),
        ("headers {'Authorization': 'Basic " + BASIC + "'}", BASIC),
        ("META {'HTTP_AUTHORIZATION': 'Bearer abcdefghijklmnopqrstuvwx'}", "abcdefghijklmnopqrstuvwx"),
        ("scope headers [(b'authorization', b'Bearer zyxwvutsrqponmlkjihg')]", "zyxwvutsrqponmlkjihg"),
        ("authorization=rawvalue123", "rawvalue123"),
        ("sent Bearer " + JWT, JWT),
        ("token " + JWT, JWT),
        ("config " + PEM + " loaded", "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo"),
        ("cut short: " + PEM[:60], "MIIEpAIB"),
        ("stored " + FERNET, FERNET),
        ("connecting to postgres://quay:db-pass-123@db:5432/quay", "db-pass-123"),
        ("login password=hunter2-secret from 10.0.0.1", "hunter2-secret"),
        ('{"username": "alice", "password": "two words"}', "two words"),
        ("{'client_secret': 'abc123def456'}", "abc123def456"),
        ("GET /webhooks/push/trigger/x?token=trigger-token-value HTTP/1.1", "trigger-token-value"),
        ("GET /authrepoemail?code=confirmation-code-1 HTTP/1.1", "confirmation-code-1"),
        ("callback /oauth/github?state=nonce-value-12&code=oauth-code-34", "oauth-code-34"),
        ("registration_secret: worker-secret-value", "worker-secret-value"),
        ("X-Registry-Auth-Token=abc.def.ghi", "abc.def.ghi"),
        ("webhook config {'url': 'http://hook', 'key': 'whsec_c2VjcmV0LWJ5dGVzLWZvci10ZXN0'}", "c2VjcmV0LWJ5"),
    ],
)
def test_redact_removes_the_credential(text, secret):
    cleaned = logs.redact(text)
    assert secret not in cleaned
    assert "REDACTED" in cleaned
    # Twice gives the same text: a record passing two handlers is not mangled.
    assert logs.redact(cleaned) == cleaned


@pytest.mark.parametrize(
    "text",
    [
        "deleted blob sha256:0123abcd (512 bytes)",
        "Basic authentication is required",
        "notification 6f1c delivered in 12 ms",
        "Task notifications.deliver[4a1c2d3e] succeeded in 0.02s: None",
        'GET /v2/alice/busybox/manifests/latest HTTP/1.1" 200',
    ],
)
def test_redact_leaves_ordinary_text_alone(text):
    assert logs.redact(text) == text


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own, not propagating: its planted secrets reach only this stream."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(logs.RequestIdFilter())
    handler.addFilter(logs.RedactFilter())
    logger = logging.getLogger(f"tests.logs.isolated.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_the_filter_scrubs_arguments_and_tracebacks():
    logger, stream = _logger(logs.TextFormatter())
    logger.info("sending %s to %s", {"Authorization": f"Bearer {JWT}"}, "http://hook")
    try:
        raise ValueError(f"bad key {PEM}")
    except ValueError:
        logger.exception("failed with password=%s", "exc-password-1")
    output = stream.getvalue()
    assert JWT not in output and "MIIEpAIB" not in output and "exc-password-1" not in output
    assert "http://hook" in output and "Traceback" in output and "ValueError" in output


def test_text_lines_have_time_level_logger_and_request_id():
    logger, stream = _logger(logs.TextFormatter())
    token = logs.request_id.set("abc123")
    try:
        logger.warning("hello %s", "world")
    finally:
        logs.request_id.reset(token)
    logger.info("outside")
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING tests\.logs\.isolated\.\d+ \[abc123\] hello world", first
    )
    assert second.endswith(" INFO " + second.split(" ")[2] + " [-] outside")


def test_json_lines_carry_the_fields_extras_and_exception():
    logger, stream = _logger(logs.JsonFormatter())
    token = logs.request_id.set("req-1")
    try:
        logger.info("pushed %s", "alice/busybox", extra={"repository": "alice/busybox", "size": 42})
        try:
            raise ZeroDivisionError("division")
        except ZeroDivisionError:
            logger.error("boom", exc_info=True, extra={"password": "extra-pass-99"})
    finally:
        logs.request_id.reset(token)
    logger.info("no request")
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(first) >= {"time", "level", "logger", "message", "request_id", "process"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert (first["level"], first["message"], first["request_id"]) == ("INFO", "pushed alice/busybox", "req-1")
    assert (first["repository"], first["size"]) == ("alice/busybox", 42)
    assert second["level"] == "ERROR" and "ZeroDivisionError" in second["exception"]
    assert second["password"] == "[REDACTED]"
    assert third["request_id"] is None


def test_log_format_is_checked():
    assert logs.handler_settings("json")["formatters"]["default"]["()"] == "quay_site.logs.JsonFormatter"
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.handler_settings("yaml")
