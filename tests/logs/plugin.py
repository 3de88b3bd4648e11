"""Every log line of a test run, checked for secrets when the run ends (README: Logs).

Each test process (every pytest-xdist worker, or the one process without xdist) writes every log
record from DEBUG up, through the project's own formatter and redaction filter, to
``<basetemp>/quay-logs/pytest-<worker>.log``. The live servers and worker programs the tests start
log into files under their DATA_DIR or tmp_path, all under the same basetemp.

Secrets the run knows of go to ``<basetemp>/quay-logs/secrets.tsv``: every token minted in a test
process (``accounts.crypto.random_token``: robot, app, OAuth and build job tokens, webhook and
registration secrets, confirmation codes), the values of session fixtures and fixture objects that
hold secrets (a live server's seeded robot and app tokens), the credential literals of the test
sources (``PASSWORD = "..."``), and whatever a test passes to :func:`register_secret`.

At the end, in the xdist controller (or the single process), every ``*.log`` under basetemp is
searched for those values and for credential shapes that redaction must have removed
(``Authorization`` values, bearer credentials, JWTs, PEM private keys). Any hit fails the session;
the report names the file, line and kind, never the secret.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.python import get_direct_param_fixture_func

from quay_site.logs import RedactFilter, RequestIdFilter, TextFormatter

DIR_NAME = "quay-logs"
SECRETS_FILE = "secrets.tsv"
WORKER_INPUT_KEY = "quay_log_dir"
# Shorter values would be found in ordinary text by chance.
MIN_SECRET_LENGTH = 8
# Libraries whose DEBUG output is bulk (every S3 request, every event-loop step); our own code,
# Django, Celery and the rest stay at DEBUG. urllib3 and websockets are kept at INFO in production
# too (settings.LOGGING, builder/worker.py): their DEBUG lines hold URLs and truncated frames.
QUIET_LOGGERS = (
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "websockets",
    "asyncio",
    "faker",
    "factory",
    "PIL",
    "parso",
)
TESTS_DIR = Path(__file__).resolve().parents[1]

# Credential shapes that must never survive redaction, with the name a finding reports.
PATTERNS = (
    ("private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    (
        "Authorization header value",
        re.compile(
            r"""(?i)authorization['"]?\s*[:=,]\s*(?:b?['"])?(?:bearer|basic)\s+(?!\[REDACTED)[A-Za-z0-9._~+/=-]{4,}"""
        ),
    ),
    ("bearer credential", re.compile(r"(?i)\bbearer\s+(?!\[REDACTED)[A-Za-z0-9._~+/-]{16,}")),
    ("webhook secret", re.compile(r"\bwhsec_[A-Za-z0-9+/]{8,}")),
    ("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
)
# Credential literals in the test sources: PASSWORD = "...", password="...", SECRET = "...".
_LITERAL = re.compile(r"""\b\w*(?:password|passwd|secret|token)\w*\s*[=:]\s*["']([^"'\s{}/]{8,})["']""", re.IGNORECASE)
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{8,}")


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


_state: dict = {"dir": None, "handler": None}


def log_dir() -> Path | None:
    """This run's directory of captured logs and known secrets (None outside a pytest run)."""
    return _state["dir"]


def register_secret(value: str, source: str) -> None:
    """Record ``value`` as a secret of this run: the end-of-run check fails if a log holds it."""
    directory = _state["dir"]
    if directory is None or not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    value = value.strip()
    if "\n" in value or "\t" in value or len(value) < MIN_SECRET_LENGTH:
        return
    with open(directory / SECRETS_FILE, "a", encoding="utf-8") as out:
        out.write(f"{source}\t{value}\n")


# ---------------------------------------------------------------------------------------------
# The check


def read_secrets(path: Path) -> dict[str, str]:
    """value -> source, from a secrets file."""
    found: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            source, _, value = line.partition("\t")
            if len(value) >= MIN_SECRET_LENGTH:
                found.setdefault(value, source)
    return found


def source_literals(root: Path = TESTS_DIR) -> dict[str, str]:
    """value -> source: the credential literals written in the test sources."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for match in _LITERAL.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.setdefault(match.group(1), f"credential literal in {path.relative_to(root.parent)}")
    return found


def scan_text(text: str, path: Path, secrets: dict[str, str]) -> list[Finding]:
    """The secrets and credential shapes in ``text`` (the contents of ``path``)."""
    found: list[Finding] = []

    def line_of(position: int) -> int:
        return text.count("\n", 0, position) + 1

    # Random tokens are letters and digits: compare each such run of the text with the set (fast
    # on big files); other values are few and searched for as they are.
    alnum = {value: source for value, source in secrets.items() if value.isalnum()}
    if alnum:
        for match in _ALNUM_RUN.finditer(text):
            source = alnum.get(match.group())
            if source is not None:
                found.append(Finding(path, line_of(match.start()), f"known secret ({source})"))
    for value, source in secrets.items():
        if value in alnum:
            continue
        start = text.find(value)
        while start != -1:
            found.append(Finding(path, line_of(start), f"known secret ({source})"))
            start = text.find(value, start + 1)
    for kind, pattern in PATTERNS:
        for match in pattern.finditer(text):
            found.append(Finding(path, line_of(match.start()), kind))
    return sorted(set(found), key=lambda f: (str(f.path), f.line, f.kind))


def scan_files(paths, secrets: dict[str, str]) -> list[Finding]:
    found: list[Finding] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:  # removed while we looked (a test's cleanup)
            continue
        found.extend(scan_text(text, Path(path), secrets))
    return found


def log_files(root: Path) -> list[Path]:
    """Every ``*.log`` file under ``root``, symbolic links not followed."""
    found = []
    for directory, _, names in os.walk(root):
        found.extend(Path(directory) / name for name in names if name.endswith(".log"))
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Hooks


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)  # after the tmpdir plugin made config._tmp_path_factory
def pytest_configure(config):
    if _is_xdist_worker(config):
        directory = Path(config.workerinput[WORKER_INPUT_KEY])
    else:
        directory = config._tmp_path_factory.getbasetemp() / DIR_NAME
        directory.mkdir(exist_ok=True)
    _state["dir"] = directory
    config._quay_log_findings = []


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: tell each worker where the run's log directory is."""
    node.workerinput[WORKER_INPUT_KEY] = str(_state["dir"])


def _ensure_capture_handler() -> None:
    """The DEBUG handler on the root logger; again when something reconfigured logging."""
    root = logging.getLogger()
    handler = _state["handler"]
    if handler is None:
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        handler = logging.FileHandler(_state["dir"] / f"pytest-{name}.log", encoding="utf-8")
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(TextFormatter())
        handler.addFilter(RequestIdFilter())
        handler.addFilter(RedactFilter())
        _state["handler"] = handler
    if handler not in root.handlers:
        root.addHandler(handler)
    if root.level != logging.DEBUG:
        # The other handlers (Django's console) keep the level they had: DEBUG is for this file.
        for other in root.handlers:
            if other is not handler and other.level == logging.NOTSET:
                other.setLevel(root.getEffectiveLevel())
        root.setLevel(logging.DEBUG)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)


def _record_minted_tokens() -> None:
    """Every random token minted in this process is a secret of the run."""
    from accounts import crypto

    if getattr(crypto.random_token, "_records_secrets", False):
        return
    mint = crypto.random_token

    def random_token(*args, **kwargs):
        token = mint(*args, **kwargs)
        register_secret(token, "token minted by accounts.crypto.random_token")
        return token

    random_token._records_secrets = True
    crypto.random_token = random_token


def _record_settings_secrets() -> None:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        values = {"SECRET_KEY": settings.SECRET_KEY, "FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY}
    except ImproperlyConfigured:  # a run without Django (the check's own tests run one)
        return
    for name, value in values.items():
        register_secret(value, f"settings.{name}")


def pytest_sessionstart(session):
    _ensure_capture_handler()
    _record_minted_tokens()
    _record_settings_secrets()


def pytest_runtest_setup(item):
    _ensure_capture_handler()


_SECRET_NAME = re.compile(r"password|secret|token|credential", re.IGNORECASE)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Fixture values that are secrets: a str fixture named like one (``token``), and the
    secret-named entries of a fixture object's ``seed`` (a live server's robot and app tokens)."""
    result = yield
    # Direct parametrization (@pytest.mark.parametrize("credential", ["password", ...])) names the
    # kind of credential a test uses, not a credential; literals in the sources are scanned anyway.
    direct = fixturedef.func is get_direct_param_fixture_func
    if isinstance(result, str) and not direct and _SECRET_NAME.search(fixturedef.argname):
        register_secret(result, f"value of fixture {fixturedef.argname}")
    try:
        seed = vars(result).get("seed")  # the instance's own attribute: no proxy's __getattr__
    except TypeError:  # no __dict__
        seed = None
    if isinstance(seed, dict):
        for key, value in seed.items():
            if isinstance(value, str) and _SECRET_NAME.search(key):
                register_secret(value, f"{key} seeded by fixture {fixturedef.argname}")
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    handler = _state["handler"]
    if handler is not None:
        handler.flush()
    if _is_xdist_worker(session.config):
        return  # the controller checks once every worker is done
    directory = _state["dir"]
    secrets = {**source_literals(), **read_secrets(directory / SECRETS_FILE)}
    findings = scan_files(log_files(session.config._tmp_path_factory.getbasetemp()), secrets)
    session.config._quay_log_findings = findings
    if findings and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    findings = getattr(config, "_quay_log_findings", [])
    if not findings:
        return
    terminalreporter.section("secrets in logs", sep="=", red=True, bold=True)
    for finding in findings[:200]:
        terminalreporter.write_line(str(finding))
    if len(findings) > 200:
        terminalreporter.write_line(f"... and {len(findings) - 200} more")
