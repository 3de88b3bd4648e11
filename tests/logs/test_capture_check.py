"""The end-of-run check for secrets in logs (tests/logs/plugin.py): it sees this run's log lines,
catches planted secrets with file, line and kind without printing them, and fails a session."""

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from tests.logs import plugin

BASE_DIR = Path(__file__).resolve().parents[2]


def test_this_run_captures_every_record_with_its_request_id():
    marker = f"capture-marker-{uuid.uuid4().hex}"
    from quay_site import logs

    token = logs.request_id.set("capture-rid-1")
    try:
        logging.getLogger("tests.logs.capture").debug("debug line %s", marker)
    finally:
        logs.request_id.reset(token)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    captured = (plugin.log_dir() / f"pytest-{worker}.log").read_text()
    (line,) = [line for line in captured.splitlines() if marker in line]
    assert " DEBUG tests.logs.capture [capture-rid-1] debug line " in line


def test_the_checker_finds_planted_secrets_and_shapes(tmp_path):
    # Not *.log: this run's own check must not find these planted lines.
    planted = tmp_path / "planted.txt"
    planted.write_text(
        "ordinary line\n"
        "login with Robot0Token0Value0123456789 ok\n"  # a known random token, inside a line
        "user alice password-of-the-test here\n"  # a known password
        "Authorization: Bearer abcdefghijklmnopqrstuvwx\n"
        "-----BEGIN EC PRIVATE KEY-----\n"
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl\n"
        "Authorization: Bearer [REDACTED]\n"  # what redaction leaves: not a finding
    )
    secrets = {"Robot0Token0Value0123456789": "robot token", "password-of-the-test": "test password"}
    findings = plugin.scan_files([planted], secrets)
    assert [(f.line, f.kind) for f in findings] == [
        (2, "known secret (robot token)"),
        (3, "known secret (test password)"),
        (4, "Authorization header value"),
        (4, "bearer credential"),
        (5, "private key"),
        (6, "JWT"),
    ]
    assert all(f.path == planted for f in findings)
    assert not any(value in str(f) for f in findings for value in secrets)


def test_known_secrets_are_collected():
    literals = plugin.source_literals()
    assert "password-123" in literals  # tests/conftest.py PASSWORD
    value = f"registered-{uuid.uuid4().hex}"
    plugin.register_secret(value, "this test")
    assert plugin.read_secrets(plugin.log_dir() / plugin.SECRETS_FILE)[value] == "this test"
    from accounts import crypto

    minted = crypto.random_token(40)
    assert plugin.read_secrets(plugin.log_dir() / plugin.SECRETS_FILE)[minted].startswith("token minted")


INNER_TESTS = """
import logging
from pathlib import Path

from tests.logs.plugin import register_secret


def test_clean():
    logging.getLogger("inner").info("nothing to hide")


def test_leaks(tmp_path):
    register_secret("inner-secret-value-42", "planted by the inner test")
    logging.getLogger("inner").warning("oops %s", "inner-secret-value-42")
    # A server's own log file, written directly (not through our redaction).
    (tmp_path / "server.log").write_text("x\\nAuthorization: Basic YWxpY2U6cGFzc3dvcmQ=\\n")
"""


def test_a_leak_fails_the_session(tmp_path):
    """A pytest run of its own, with xdist (the check runs in the controller, the leaks happen in
    the workers): it passes its tests, then fails on the two leaks and names only them."""
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    # The inner run's logs (with their planted leaks) live outside this run's basetemp, which this
    # run's own check searches.
    outside = Path(tempfile.mkdtemp(prefix="quay-log-check-"))
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    try:
        inner = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "xdist.plugin", "-p", "tests.logs.plugin", "-p", "no:cacheprovider"]
            + ["-c", os.devnull, "--rootdir", str(tmp_path), "--basetemp", str(outside / "basetemp"), "-n", "2"]
            + [str(tmp_path / "test_inner.py")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=180,
        )
    finally:
        shutil.rmtree(outside, ignore_errors=True)
    output = inner.stdout + inner.stderr
    assert inner.returncode == 1, output
    assert "2 passed" in inner.stdout and "secrets in logs" in inner.stdout, output
    findings = inner.stdout.split("secrets in logs", 1)[1].splitlines()[1:]
    findings = [line for line in findings if ": " in line and not line.startswith("=")]
    assert len(findings) == 2, output
    assert any(re.search(r"pytest-gw\d\.log:\d+: known secret \(planted by the inner test\)$", f) for f in findings)
    assert any(re.search(r"server\.log:2: Authorization header value$", f) for f in findings), output
    assert "inner-secret-value-42" not in output and "YWxpY2U6cGFzc3dvcmQ=" not in output
