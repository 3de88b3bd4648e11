"""Health checks of the services a web process depends on, in Quay's shape.

Two depths, as Quay's ``/health/instance`` and ``/health/endtoend``:

- **instance**: can *this process* work? Its database connection answers, Redis answers a PING
  (when configured), the storage it was configured with is usable without a round trip (the
  directory exists and is writable; an S3 client can be built), and the token signing key is
  loaded. Cheap enough for a load balancer polling every few seconds.
- **endtoend**: does everything actually work? A real query, a Redis write/read/delete, a small
  probe object written, read back and deleted in the configured storage backend, and a token
  signed and verified against the key file on disk.

Each check answers (ok, note). Notes are public: they name the failing step and at most an
exception's class, never its message (which may carry host names, paths or credentials); the
whole exception goes to the server log.
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import connection

from observability.collectors import redis_client

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str | None]]


class CheckFailed(Exception):
    """A check's own verdict (the step that failed), as opposed to an exception it ran into."""


def _run(name: str, check: Check) -> tuple[bool, str | None]:
    try:
        return check()
    except CheckFailed as exc:
        log.warning("health check %s failed: %s", name, exc)
        return False, f"{name}: {exc}"
    except Exception as exc:
        log.warning("health check %s failed", name, exc_info=True)
        return False, f"{name}: {type(exc).__name__}"


# ---------------------------------------------------------------------------------------------
# database


def database_instance() -> tuple[bool, str | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return True, None


def database_endtoend() -> tuple[bool, str | None]:
    """The schema is there and a real table answers, not just the server."""
    from django.db.migrations.recorder import MigrationRecorder

    from registry.models import Repository

    if not MigrationRecorder(connection).has_table():
        raise CheckFailed("the schema is not migrated")
    Repository.objects.order_by().values_list("id").first()
    return True, None


# ---------------------------------------------------------------------------------------------
# redis


def redis_instance() -> tuple[bool, str | None]:
    if not redis_client(settings.REDIS_URL).ping():
        raise CheckFailed("PING was not answered")
    return True, None


def redis_endtoend() -> tuple[bool, str | None]:
    client = redis_client(settings.REDIS_URL)
    key = f"{settings.REDIS_KEY_PREFIX}health:{uuid.uuid4().hex}"
    value = uuid.uuid4().hex.encode()
    try:
        client.set(key, value, ex=60)
        if client.get(key) != value:
            raise CheckFailed("a value written was not read back")
    finally:
        client.delete(key)
    return True, None


# ---------------------------------------------------------------------------------------------
# storage


def storage_instance() -> tuple[bool, str | None]:
    from registry.storage import get_blob_store

    get_blob_store()  # builds the backend from settings (creates the upload directory)
    if settings.STORAGE_BACKEND == "filesystem":
        root = str(settings.STORAGE_DIR)
        if not os.path.isdir(root) or not os.access(root, os.W_OK | os.X_OK):
            raise CheckFailed("the storage directory is not a writable directory")
    return True, None


PROBE_BYTES = 64


def storage_endtoend() -> tuple[bool, str | None]:
    """Write, read back and delete a small probe through the registry's own upload interface,
    so the probe takes the very path (and permissions) blob uploads take, on either backend.
    A probe left behind by a crash is an upload no session owns: garbage collection removes it."""
    from registry.storage import get_blob_store

    probe_id = f"health-{uuid.uuid4()}"
    payload = os.urandom(PROBE_BYTES)
    parts: list = []
    step = "write"
    try:
        store = get_blob_store()
        size, part = store.upload_append(probe_id, 0, io.BytesIO(payload), len(payload))
        if part is not None:
            parts.append(part)
        if size != len(payload):
            raise CheckFailed("the probe was stored short")
        step = "read"
        if b"".join(store.upload_read(probe_id, size, parts)) != payload:
            raise CheckFailed("the probe read back differs from what was written")
        step = "delete"
        store.upload_delete(probe_id, parts)
    except CheckFailed:
        raise
    except Exception as exc:
        log.warning("health check storage failed at %s", step, exc_info=True)
        raise CheckFailed(f"the probe could not be {'written' if step == 'write' else step} ({type(exc).__name__})")
    return True, None


# ---------------------------------------------------------------------------------------------
# auth (the registry token signing key)


def auth_instance() -> tuple[bool, str | None]:
    from registry.tokens import signing_key

    signing_key()
    return True, None


def auth_endtoend() -> tuple[bool, str | None]:
    """Sign a token with the key this process signs with, and verify it with the public key of
    the key file on disk: a key file replaced or unreadable (other machines would reject this
    process's tokens, or it theirs) fails here."""
    from registry.tokens import signing_key

    key = signing_key()
    with open(settings.REGISTRY_TOKEN_KEY_FILE, "rb") as f:
        on_disk = serialization.load_pem_private_key(f.read(), password=None).public_key()
    now = int(time.time())
    claims = {"iss": settings.REGISTRY_TOKEN_ISSUER, "aud": "health", "sub": "health", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    try:
        jwt.decode(token, on_disk, algorithms=["RS256"], audience="health", issuer=settings.REGISTRY_TOKEN_ISSUER)
    except jwt.InvalidSignatureError:
        raise CheckFailed("the key file on disk is not the key this process signs with") from None
    return True, None


# ---------------------------------------------------------------------------------------------


REDIS_NOT_USED = "redis: not used (REDIS_URL is empty)"


def _checks(depth: str) -> dict[str, Check]:
    instance = depth == "instance"
    checks: dict[str, Check] = {"database": database_instance if instance else database_endtoend}
    if settings.REDIS_URL:
        checks["redis"] = redis_instance if instance else redis_endtoend
    checks["storage"] = storage_instance if instance else storage_endtoend
    checks["auth"] = auth_instance if instance else auth_endtoend
    return checks


def check(depth: str) -> tuple[dict, int]:
    """Run the checks of ``depth`` ("instance" or "endtoend"); returns Quay's body and status:
    ``{"data": {"services": {name: bool}, "notes": [...]}, "status_code": 200 | 503}``."""
    services: dict[str, bool] = {}
    notes: list[str] = []
    for name, run in _checks(depth).items():
        ok, note = _run(name, run)
        services[name] = ok
        if note:
            notes.append(note)
    if not settings.REDIS_URL:
        notes.append(REDIS_NOT_USED)
    status = 200 if all(services.values()) else 503
    return {"data": {"services": services, "notes": notes}, "status_code": status}, status
