"""Shared fixtures: named users (alice owns things, bob and charlie are others), an
organization with teams, robots, and a registry client that speaks token auth."""

import base64
import os
import shutil
import subprocess
import tempfile
from urllib.parse import urlsplit

import pytest
from django.test import Client

from accounts import services as account_services
from accounts.models import Team
from registry import usage
from registry.storage import get_blob_store

PASSWORD = "password-123"

# Every log line of the run is kept and checked for secrets at the end (tests/logs/plugin.py).
pytest_plugins = ["tests.logs.plugin"]


@pytest.fixture(autouse=True)
def _fresh_blob_store(settings, tmp_path):
    """Each test gets its own storage directory."""
    settings.STORAGE_DIR = tmp_path / "storage"
    settings.STORAGE_BACKEND = "filesystem"
    get_blob_store.cache_clear()
    yield
    get_blob_store.cache_clear()


@pytest.fixture
def alice(db):
    return account_services.user_create(username="alice", password=PASSWORD)


@pytest.fixture
def bob(db):
    return account_services.user_create(username="bob", password=PASSWORD)


@pytest.fixture
def charlie(db):
    return account_services.user_create(username="charlie", password=PASSWORD)


@pytest.fixture
def org(alice):
    """Organization ``acme`` owned by alice (team ``owners``, role admin)."""
    return account_services.organization_create(name="acme", creator=alice)


@pytest.fixture
def creators_team(org):
    return account_services.team_create(organization=org, name="builders", role=Team.Role.CREATOR)


@pytest.fixture
def alice_robot(alice):
    """Robot ``alice+deploy`` and its token."""
    user, token = account_services.robot_create(namespace=alice.namespace, short_name="deploy")
    return user, token


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class RegistryClient:
    """A Django test client that fetches a bearer token for the scopes it needs, like docker."""

    def __init__(self, username: str | None = None, password: str | None = None):
        self.client = Client()
        self.username = username
        self.password = password

    def token(self, *scopes: str) -> str:
        headers = {}
        if self.username:
            headers["HTTP_AUTHORIZATION"] = basic(self.username, self.password)
        query = "&".join(f"scope={s}" for s in scopes)
        response = self.client.get(f"/v2/auth?service=testserver&{query}", **headers)
        assert response.status_code == 200, response.content
        return response.json()["token"]

    def request(self, method: str, path: str, *scopes: str, **extra):
        if scopes:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {self.token(*scopes)}"
        return getattr(self.client, method.lower())(path, **extra)


@pytest.fixture
def registry_client():
    return RegistryClient


class _AliveThread:
    def is_alive(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _pull_log_flushed_by_the_test(monkeypatch):
    """The pull-log flusher thread writes through its own database connection, outside the
    test's transaction, where the rows it inserts fail their foreign keys. Pretend it runs, stub
    what a thread started elsewhere would call, and let tests call ``flush_pulls`` instead."""
    monkeypatch.setattr(usage, "_flusher", _AliveThread())
    monkeypatch.setattr(usage, "flush", lambda: 0)
    usage._buffer.clear()
    yield
    usage._buffer.clear()


@pytest.fixture(scope="session")
def postgres_base():
    """The suite's PostgreSQL URL, or (SQLite configuration) that of a private cluster from
    .ci/services.sh, for tests of behaviour only PostgreSQL has (row locks, dropped connections).
    Tests create their own databases in it."""
    from tests.e2e.conftest import BASE_DIR, POSTGRES_SCHEMES

    base = os.environ.get("DATABASE_URL", "")
    if urlsplit(base).scheme in POSTGRES_SCHEMES:
        yield base
        return
    # Under /tmp, not pytest's 0700 tree: the postgres user must reach its data directory.
    state = tempfile.mkdtemp(prefix="quay-test-pg-")
    env = {**os.environ, "QUAY_SERVICES_DIR": state}
    services = str(BASE_DIR / ".ci" / "services.sh")
    try:
        out = subprocess.run([services, "start"], env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        yield next(line.split("=", 1)[1] for line in out.stdout.split() if line.startswith("DATABASE_URL="))
    finally:
        subprocess.run([services, "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)
