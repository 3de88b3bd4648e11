"""A minimal OCI distribution client over http.client, for setup and for the push metrics.

One ``Target`` is one registry endpoint as a client sees it: its port and, for the project, the
Basic credentials it trades for bearer tokens at ``/v2/auth`` (Distribution runs without auth).
Connections are kept alive, as container clients keep them.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from bench.util import BenchError

BLOCK = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


@dataclass
class Target:
    """A registry endpoint: ``label`` names it in tables (``project``, ``Distribution`` ...)."""

    label: str
    port: int
    creds: tuple[str, str] | None = None
    _tokens: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def connect(self, timeout: float = 600) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, blocksize=BLOCK)

    def basic_header(self) -> str:
        user, password = self.creds
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def token(self, scopes: list[str], *, min_valid: float = 60) -> str | None:
        """A bearer token for ``scopes`` valid at least ``min_valid`` more seconds (None: no auth)."""
        if self.creds is None:
            return None
        key = tuple(sorted(scopes))
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached[1] - time.time() > min_valid:
            return cached[0]
        query = "&".join([f"service={quote(self.host)}"] + [f"scope={quote(s)}" for s in scopes])
        conn = self.connect(timeout=60)
        try:
            conn.request("GET", f"/v2/auth?{query}", headers={"Authorization": self.basic_header()})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise BenchError(f"{self.label}: token endpoint answered {response.status}: {body[:300]!r}")
        data = json.loads(body)
        token = data.get("token") or data.get("access_token")
        with self._lock:
            self._tokens[key] = (token, time.time() + int(data.get("expires_in", 60)))
        return token

    def auth(self, scopes: list[str], *, min_valid: float = 60) -> dict[str, str]:
        token = self.token(scopes, min_valid=min_valid)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def auth_value(self, scopes: list[str], *, min_valid: float = 60) -> str:
        """The Authorization header value, or "" when the endpoint has no auth."""
        return self.auth(scopes, min_valid=min_valid).get("Authorization", "")


def pull_scope(repo: str) -> list[str]:
    return [f"repository:{repo}:pull"]


def push_scope(repo: str) -> list[str]:
    return [f"repository:{repo}:pull,push"]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * BLOCK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def location_path(location: str) -> str:
    """The path and query of an upload Location (Distribution sends absolute URLs)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_param(path: str, name: str, value: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{name}={quote(value, safe='')}"


class Session:
    """One keep-alive connection to a target, reopened if the server closed it."""

    def __init__(self, target: Target, timeout: float = 600):
        self.target = target
        self.timeout = timeout
        self.conn = target.connect(timeout)

    def close(self) -> None:
        self.conn.close()

    def request(self, method: str, path: str, *, headers=None, body=None, expect=None) -> http.client.HTTPResponse:
        """Send a request and read the whole answer; ``expect`` is the status(es) accepted."""
        headers = dict(headers or {})
        if body is None and method in ("PUT", "POST", "PATCH"):
            headers.setdefault("Content-Length", "0")
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                response.data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed in between: retry once, fresh,
                # unless the body was a stream we already consumed.
                self.conn.close()
                self.conn = self.target.connect(self.timeout)
                if attempt == 2 or (body is not None and not isinstance(body, bytes)):
                    raise
        if expect is not None:
            wanted = (expect,) if isinstance(expect, int) else expect
            if response.status not in wanted:
                raise BenchError(
                    f"{self.target.label}: {method} {path} answered {response.status} "
                    f"(expected {wanted}): {response.data[:300]!r}"
                )
        return response

    # -- pushes --------------------------------------------------------------------------------

    def start_upload(self, repo: str, auth: dict) -> str:
        response = self.request("POST", f"/v2/{repo}/blobs/uploads/", headers=auth, expect=202)
        return location_path(response.getheader("Location"))

    def push_blob(self, repo: str, body, digest: str, size: int, auth: dict) -> None:
        """POST + PUT with the whole blob (bytes or a file object) as the PUT body."""
        location = self.start_upload(repo, auth)
        headers = {**auth, "Content-Type": "application/octet-stream", "Content-Length": str(size)}
        self.request("PUT", with_param(location, "digest", digest), headers=headers, body=body, expect=201)

    def push_blob_chunked(self, repo: str, path: Path, digest: str, size: int, chunk: int, auth: dict) -> dict:
        """POST, one PATCH per ``chunk`` bytes, then an empty PUT: timings of each phase."""
        t0 = time.perf_counter()
        location = self.start_upload(repo, auth)
        offset = 0
        with open(path, "rb") as f:
            while offset < size:
                data = f.read(chunk)
                headers = {
                    **auth,
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(len(data)),
                    "Content-Range": f"{offset}-{offset + len(data) - 1}",
                }
                response = self.request("PATCH", location, headers=headers, body=data, expect=202)
                location = location_path(response.getheader("Location"))
                offset += len(data)
        t_put = time.perf_counter()
        self.request("PUT", with_param(location, "digest", digest), headers=auth, expect=201)
        t_end = time.perf_counter()
        return {"total": t_end - t0, "final_put": t_end - t_put}

    def blob_exists(self, repo: str, digest: str, auth: dict) -> bool:
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", headers=auth, expect=(200, 404))
        return response.status == 200

    def put_manifest(self, repo: str, reference: str, raw: bytes, auth: dict, media_type: str = OCI_MANIFEST) -> None:
        headers = {**auth, "Content-Type": media_type, "Content-Length": str(len(raw))}
        self.request("PUT", f"/v2/{repo}/manifests/{reference}", headers=headers, body=raw, expect=201)

    def push_small_image(self, repo: str, tag: str, layer: bytes, config: bytes, auth: dict) -> str:
        """What a client does for a one-layer image: HEAD each blob, upload it, PUT the manifest."""
        for blob in (layer, config):
            digest = sha256_digest(blob)
            if not self.blob_exists(repo, digest, auth):
                self.push_blob(repo, blob, digest, len(blob), auth)
        raw = image_manifest(config, [layer])
        self.put_manifest(repo, tag, raw, auth)
        return sha256_digest(raw)


def image_manifest(config: bytes, layers: list[bytes]) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(x), "size": len(x)} for x in layers],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def image_config(layers: list[bytes], label: str) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"bench": label}},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(x) for x in layers]},
    }
    return json.dumps(config, separators=(",", ":")).encode()
