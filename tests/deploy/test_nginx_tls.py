"""deploy/nginx/quay.conf.template with real nginx, TLS on, in front of a live registry (gunicorn
with X_ACCEL_REDIRECT_PREFIX, and Daphne): the token realm says https, blob bytes are sent by
nginx, websockets reach Daphne, and the upload cap answers 413 before the registry sees a byte."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.deploy import support
from tests.e2e.conftest import PASSWORD, LiveRegistry, _free_port, live_server

pytestmark = pytest.mark.e2e

MAX_BODY = 1024 * 1024  # NGINX_MAX_BODY_SIZE=1m
REPO = "alice/private-images"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class Proxy:
    """nginx running the production template: an https and an http port on 127.0.0.1."""

    def __init__(self, registry: LiveRegistry, root: Path):
        self.root = root
        self.https_port, self.http_port = _free_port(), _free_port()
        self.cert, key = _self_signed(root)
        values = {
            "NGINX_SERVER_NAME": "127.0.0.1",
            "NGINX_HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
            "NGINX_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "NGINX_TLS_CERT": str(self.cert),
            "NGINX_TLS_KEY": str(key),
            "NGINX_WEB_UPSTREAM": registry.host,
            "NGINX_WS_UPSTREAM": f"127.0.0.1:{registry.env['WS_PORT']}",
            "NGINX_STORAGE_DIR": str(registry.data_dir / "storage"),
            "NGINX_MAX_BODY_SIZE": "1m",
            # The compose file's S3 server block, parsed along (nothing listens behind it).
            "NGINX_S3_SERVER_NAME": "s3.localhost",
            "NGINX_S3_UPSTREAM": f"127.0.0.1:{_free_port()}",
        }
        includes = []
        for template in support.NGINX_TEMPLATES:
            path = root / template.name.removesuffix(".template")
            path.write_text(support.render_template(template, values))
            includes.append(f"    include {path};")
        # What /etc/nginx/nginx.conf holds around conf.d/ on a host. The blob files are mode 0600
        # and owned by the registry's user: the workers run as that user (README: Deployment).
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        temp_paths = "\n".join(
            f"    {kind}_temp_path {root}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = root / "nginx.conf"
        self.conf.write_text(
            f"{user}\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n"
            f"events {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n{temp_paths}\n"
            + "\n".join(includes)
            + "\n}\n"
        )
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def start(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        assert Path(nginx).exists(), "nginx is needed (apt-get install nginx-light)"
        check = subprocess.run([nginx, "-t", "-c", self.conf, "-p", self.root], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            [nginx, "-c", self.conf, "-p", self.root, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("nginx did not listen")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def request(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, path if "://" in path else self.url + path, verify=str(self.cert), **kw)

    def token(self, scope: str) -> str:
        response = self.request(
            "GET",
            "/v2/auth",
            params={"service": f"127.0.0.1:{self.https_port}", "scope": scope},
            auth=("alice", PASSWORD),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()["token"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    yield from live_server(tmp_path_factory, "nginx-tls", LiveRegistry, X_ACCEL_REDIRECT_PREFIX="/_blobs")


@pytest.fixture(scope="module")
def proxy(registry, tmp_path_factory):
    # A short path: nginx's temp directories live under it.
    proxy = Proxy(registry, tmp_path_factory.mktemp("nginx"))
    proxy.start()
    yield proxy
    proxy.stop()


def test_https_challenge_names_the_https_realm(proxy):
    response = proxy.request("GET", "/v2/", timeout=30)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert f'realm="https://127.0.0.1:{proxy.https_port}/v2/auth"' in challenge
    assert f'service="127.0.0.1:{proxy.https_port}"' in challenge
    # Plain HTTP is sent to HTTPS.
    plain = requests.get(f"http://127.0.0.1:{proxy.http_port}/v2/", allow_redirects=False, timeout=30)
    assert plain.status_code == 308
    # $host drops the port: the redirect goes to 443, the HTTPS port in production.
    assert plain.headers["Location"] == "https://127.0.0.1/v2/"


def _start_upload(proxy: Proxy, headers: dict) -> str:
    response = proxy.request("POST", f"/v2/{REPO}/blobs/uploads/", headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    return location if "://" in location else proxy.url + location


def test_upload_cap_and_blob_sent_by_nginx(proxy, registry):
    headers = {"Authorization": "Bearer " + proxy.token(f"repository:{REPO}:push,pull")}
    octets = {**headers, "Content-Type": "application/octet-stream"}

    # Over the cap: nginx answers 413 itself; the upload session is untouched.
    location = _start_upload(proxy, headers)
    too_big = proxy.request("PATCH", location, data=os.urandom(MAX_BODY + 4096), headers=octets, timeout=60)
    assert too_big.status_code == 413
    assert "nginx" in too_big.text
    status = proxy.request("GET", location, headers=headers, timeout=30)
    assert status.status_code == 204 and status.headers["Range"] == "0-0"

    # Under it: the chunk streams through, and the blob is made.
    data = os.urandom(MAX_BODY - 64 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    chunk = proxy.request("PATCH", location, data=data, headers=octets, timeout=60)
    assert chunk.status_code == 202, chunk.text
    location = chunk.headers["Location"]
    location = location if "://" in location else proxy.url + location
    separator = "&" if "?" in location else "?"
    done = proxy.request("PUT", f"{location}{separator}digest={digest}", headers=headers, timeout=60)
    assert done.status_code == 201, done.text

    # The web process answers a blob GET with X-Accel-Redirect and no body...
    # (A token of its own: a registry token is only good for the host name it was issued for.)
    direct_token = registry.token(f"repository:{REPO}:pull", username="alice", password=PASSWORD)
    direct = requests.get(
        f"{registry.url}/v2/{REPO}/blobs/{digest}", headers={"Authorization": f"Bearer {direct_token}"}, timeout=30
    )
    assert direct.status_code == 200
    assert direct.headers["X-Accel-Redirect"].startswith("/_blobs/blobs/sha256/")
    assert direct.content == b""
    # ... and through nginx the client gets the bytes, with the registry's headers, and ranges.
    blob = proxy.request("GET", f"/v2/{REPO}/blobs/{digest}", headers=headers, timeout=60)
    assert blob.status_code == 200
    assert blob.content == data
    assert blob.headers["Docker-Content-Digest"] == digest
    assert "X-Accel-Redirect" not in blob.headers
    part = proxy.request("GET", f"/v2/{REPO}/blobs/{digest}", headers={**headers, "Range": "bytes=10-19"}, timeout=60)
    assert part.status_code == 206 and part.content == data[10:20]
    # The internal location is not reachable from outside.
    internal = proxy.request("GET", direct.headers["X-Accel-Redirect"], timeout=30)
    assert internal.status_code == 404
    # No token, no blob: nginx sends only what the registry allowed.
    anonymous = proxy.request("GET", f"/v2/{REPO}/blobs/{digest}", timeout=30)
    assert anonymous.status_code == 401 and anonymous.content != data


def test_websocket_reaches_daphne(proxy):
    context = ssl.create_default_context(cafile=str(proxy.cert))
    url = f"wss://127.0.0.1:{proxy.https_port}/ws/builder/"
    with connect(url, ssl=context, open_timeout=30, close_timeout=5) as ws:
        # The build manager itself answers: a wrong secret is refused with its close code.
        ws.send(json.dumps({"type": "register", "secret": "not-the-secret", "host": "t", "version": "1.0.0",
                            "capacity": 1, "engine": "buildah"}))  # fmt: skip
        # "refused", then the close (4003); under load the close may overtake the message.
        try:
            assert json.loads(ws.recv(timeout=30))["type"] == "refused"
            ws.recv(timeout=30)
        except ConnectionClosed:
            pass
        assert ws.close_code == 4003
