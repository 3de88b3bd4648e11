"""The Clair v4 backend (CLAIR_URL) against a local HTTP server speaking Clair's documented
index_report / vulnerability_report endpoints with recorded-style payloads (tests/scanning/clair/):
the index request names every layer with a URI and a pull token that really fetch the blob from
this registry; the stored counts are exactly what Clair's report says; the security API and
vulnerability_found work unchanged; Clair down, refusing, or failing to index fails the scan with
a clear message; the PSK JWT is sent and checked."""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from django.test import Client

from notifications.models import NotificationEvent
from scanning import selectors
from scanning.models import Finding, ManifestPackage, ManifestScan
from tests.registry_rest.conftest import Api
from tests.scanning.conftest import image, import_docs
from tests.scanning.images import debian_layers
from tests.scanning.test_matching import fixture_advisories, watched  # noqa: F401

FIXTURES = Path(__file__).parent / "clair"
PSK = base64.b64encode(b"a pre-shared key of thirty-two b").decode()
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


class ClairServer:
    """A threaded HTTP server on 127.0.0.1 answering as Clair v4 does (indexer and matcher)."""

    def __init__(self, *, psk: str | None = None, index_state: str = "IndexFinished"):
        self.psk = psk
        self.index_state = index_state
        self.requests: list[dict] = []
        self.indexed: dict[str, list[str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                if server.psk is None:
                    return True
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                try:
                    jwt.decode(token, base64.b64decode(server.psk), algorithms=["HS256"], issuer="quay")
                except jwt.PyJWTError as exc:
                    self._answer(401, {"code": "unauthorized", "message": f"bad token: {exc}"})
                    return False
                return True

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                server.requests.append(
                    {"method": "POST", "path": self.path, "body": body, "headers": dict(self.headers)}
                )
                if not self._authorized():
                    return
                if self.path != "/indexer/api/v1/index_report":
                    return self._answer(404, {"code": "not-found", "message": self.path})
                layers = [layer["hash"] for layer in body["layers"]]
                server.indexed[body["hash"]] = layers
                report = server.fill(json.loads((FIXTURES / "index_report.json").read_text()), body["hash"], layers)
                if server.index_state == "IndexError":
                    report.update(state="IndexError", success=False, err="fetcher: unexpected status code 401")
                self._answer(201, report)

            def do_GET(self):
                server.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
                if not self._authorized():
                    return
                prefix = "/matcher/api/v1/vulnerability_report/"
                digest = self.path.removeprefix(prefix)
                if not self.path.startswith(prefix) or digest not in server.indexed:
                    return self._answer(404, {"code": "not-found", "message": "index report not found"})
                report = json.loads((FIXTURES / "vulnerability_report.json").read_text())
                self._answer(200, server.fill(report, digest, server.indexed[digest]))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @staticmethod
    def fill(doc: dict, manifest: str, layers: list[str]) -> dict:
        text = json.dumps(doc).replace("$MANIFEST", manifest)
        for n, digest in enumerate(layers):
            text = text.replace(f"$LAYER{n}", digest)
        return json.loads(text)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def clair(settings):
    settings.CLAIR_PSK = PSK
    settings.CLAIR_REGISTRY_URL = "http://registry.test"
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    with ClairServer(psk=PSK) as server:
        settings.CLAIR_URL = server.url
        yield server


def expected_from_payload() -> dict:
    """What the recorded vulnerability report says, counted the way Clair lists it."""
    report = json.loads((FIXTURES / "vulnerability_report.json").read_text())
    pairs = [(p, v) for p, ids in report["package_vulnerabilities"].items() for v in ids]
    vulns = report["vulnerabilities"]
    return {
        "packages": len(report["packages"]),
        "affected_packages": len({p for p, _ in pairs}),
        "vulnerabilities": len(pairs),
        "fixable": sum(1 for _, v in pairs if vulns[v]["fixed_in_version"]),
        "by_severity": Counter(vulns[v]["normalized_severity"] for _, v in pairs),
    }


def test_counts_are_what_clairs_report_says(clair, push):
    manifest = push(image(debian_layers()))
    scan = ManifestScan.objects.get(manifest=manifest)
    assert (scan.status, scan.error) == ("scanned", "")
    assert (scan.os_id, scan.os_version, scan.os_name, scan.ecosystem) == (
        "debian",
        "12",
        "Debian GNU/Linux 12 (bookworm)",
        "Debian:12",
    )
    expected = expected_from_payload()
    summary = selectors.manifest_summaries(manifest_ids=[manifest.pk])[manifest.pk]
    assert (summary.packages, summary.affected_packages, summary.vulnerabilities, summary.fixable) == (
        expected["packages"],
        expected["affected_packages"],
        expected["vulnerabilities"],
        expected["fixable"],
    )
    assert (summary.packages, summary.affected_packages, summary.vulnerabilities, summary.fixable) == (5, 4, 5, 3)
    assert {k: v for k, v in summary.by_severity.items() if v} == dict(expected["by_severity"])
    assert (summary.highest, summary.highest_count) == ("Critical", 1)

    layers = [d["digest"] for d in json.loads(bytes(manifest.raw))["layers"]]
    grouped = selectors.manifest_vulnerabilities(manifest=manifest)
    assert [
        (p.name, p.kind, p.ecosystem, p.added_by, [(v.id, v.severity, v.fixed_by) for v in p.vulnerabilities])
        for p in grouped
    ] == [
        ("zlib1g", "dpkg", "Debian:12", layers[0], [("CVE-2023-45853", "Critical", "")]),
        (
            "libssl3",
            "dpkg",
            "Debian:12",
            layers[0],
            [("CVE-2024-0727", "High", "3.0.13-1~deb12u1"), ("CVE-2023-5678", "Medium", "3.0.13-1~deb12u1")],
        ),
        # Clair's OSV-sourced fixed_in_version is a query string: the fixed version is read out.
        ("requests", "python", "PyPI", layers[1], [("GHSA-j8r2-6x86-q33q", "Medium", "2.31.0")]),
        ("bash", "dpkg", "Debian:12", layers[0], [("CVE-2022-3715", "Negligible", "")]),
    ]
    ssl = grouped[1].vulnerabilities[0]
    assert ssl.link == "https://security-tracker.debian.org/tracker/CVE-2024-0727"
    assert ssl.description.startswith("Processing a maliciously formatted PKCS12 file")
    curl = ManifestPackage.objects.get(manifest=manifest, package__name="curl")
    assert (curl.added_by, curl.path) == (layers[1], "var/lib/dpkg/status")


def test_the_index_request_lets_clair_fetch_each_layer_from_the_registry(clair, push, settings):
    manifest = push(image(debian_layers()))
    post, get = clair.requests
    assert (post["method"], post["path"], get["path"]) == (
        "POST",
        "/indexer/api/v1/index_report",
        f"/matcher/api/v1/vulnerability_report/{manifest.digest}",
    )
    layers = json.loads(bytes(manifest.raw))["layers"]
    assert post["body"]["hash"] == manifest.digest
    assert [layer["hash"] for layer in post["body"]["layers"]] == [d["digest"] for d in layers]
    # The PSK JWT on both requests (the server refused nothing).
    for request in (post, get):
        claims = jwt.decode(request["headers"]["Authorization"][7:], base64.b64decode(PSK), algorithms=["HS256"])
        assert claims["iss"] == "quay" and claims["exp"] > claims["iat"]
    # What Clair's fetcher does: GET the URI with the headers given, from the (private) registry.
    registry = Client()
    settings.ALLOWED_HOSTS = ["registry.test"]
    for layer, descriptor in zip(post["body"]["layers"], layers, strict=True):
        assert layer["uri"] == f"http://registry.test/v2/alice/app/blobs/{descriptor['digest']}"
        (authorization,) = layer["headers"]["Authorization"]
        path = layer["uri"].removeprefix("http://registry.test")
        answer = registry.get(path, HTTP_HOST="registry.test", HTTP_AUTHORIZATION=authorization)
        assert answer.status_code == 200
        body = b"".join(answer.streaming_content) if answer.streaming else answer.content
        assert len(body) == descriptor["size"]
        assert registry.get(path, HTTP_HOST="registry.test").status_code == 401
    # The token pulls that repository only: not push, not another repository.
    token = post["body"]["layers"][0]["headers"]["Authorization"][0]
    blob = layers[0]["digest"]
    other = registry.get(f"/v2/alice/other/blobs/{blob}", HTTP_HOST="registry.test", HTTP_AUTHORIZATION=token)
    assert other.status_code == 401
    upload = registry.post("/v2/alice/app/blobs/uploads/", HTTP_HOST="registry.test", HTTP_AUTHORIZATION=token)
    assert upload.status_code == 401


def test_the_security_api_and_vulnerability_found_work_unchanged(clair, push, watched, alice):  # noqa: F811
    manifest = push(image(debian_layers()))
    kinds = sorted(
        (
            e.payload["vulnerability"]["id"],
            e.payload["vulnerability"]["priority"],
            e.payload["vulnerability"]["has_fix"],
        )
        for e in NotificationEvent.objects.filter(kind="vulnerability_found")
    )
    assert kinds == [
        ("CVE-2022-3715", "Negligible", False),
        ("CVE-2023-45853", "Critical", False),
        ("CVE-2023-5678", "Medium", True),
        ("CVE-2024-0727", "High", True),
        ("GHSA-j8r2-6x86-q33q", "Medium", True),
    ]
    assert all(e.payload["tags"] == ["latest"] for e in NotificationEvent.objects.filter(kind="vulnerability_found"))
    body = Api(alice).get(f"/api/v1/repository/alice/app/manifest/{manifest.digest}/security", vulnerabilities="true")
    features = {f["Name"]: f for f in body.json()["data"]["Layer"]["Features"]}
    assert sorted(features) == ["bash", "curl", "libssl3", "requests", "zlib1g"]
    assert [v["FixedBy"] for v in features["requests"]["Vulnerabilities"]] == ["2.31.0"]
    # The same image scanned again (another tag) announces nothing new.
    push(image(debian_layers(), seed="again"), "again")
    assert NotificationEvent.objects.filter(kind="vulnerability_found").count() == 5


def test_an_osv_import_leaves_clairs_findings_alone(clair, push, tmp_path):
    manifest = push(image(debian_layers()))
    before = set(Finding.objects.values_list("package_id", "advisory__osv_id", "fixed_by"))
    import_docs(tmp_path, *fixture_advisories())
    assert set(Finding.objects.values_list("package_id", "advisory__osv_id", "fixed_by")) == before
    assert selectors.manifest_summaries(manifest_ids=[manifest.pk])[manifest.pk].vulnerabilities == 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_clair_down_fails_the_scan_with_a_clear_message(push, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    settings.CLAIR_REGISTRY_URL = "http://registry.test"
    settings.CLAIR_URL = f"http://127.0.0.1:{free_port()}"
    manifest = push(image(debian_layers()))
    scan = ManifestScan.objects.get(manifest=manifest)
    assert scan.status == "failed"
    assert scan.error.startswith(f"Clair at {settings.CLAIR_URL} is unreachable: ")
    assert not ManifestPackage.objects.filter(manifest=manifest).exists()


def test_clair_on_a_network_not_allowed_is_refused(push, settings):
    settings.CLAIR_REGISTRY_URL = "http://registry.test"
    with ClairServer() as server:
        settings.CLAIR_URL = server.url
        manifest = push(image(debian_layers()))
        assert server.requests == []
    error = ManifestScan.objects.get(manifest=manifest).error
    assert "may not be reached" in error and "OUTBOUND_ALLOWED_NETWORKS" in error


def test_a_wrong_psk_and_an_index_error_fail_the_scan(push, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    settings.CLAIR_REGISTRY_URL = "http://registry.test"
    settings.CLAIR_PSK = base64.b64encode(b"not the key that Clair was given").decode()
    with ClairServer(psk=PSK) as server:
        settings.CLAIR_URL = server.url
        scan = ManifestScan.objects.get(manifest=push(image(debian_layers())))
    assert scan.status == "failed"
    assert scan.error.startswith("Clair answered POST /indexer/api/v1/index_report with HTTP 401: bad token")
    settings.CLAIR_PSK = ""
    with ClairServer(index_state="IndexError") as server:
        settings.CLAIR_URL = server.url
        scan = ManifestScan.objects.get(manifest=push(image(debian_layers(), seed="2"), "two"))
    assert (scan.status, scan.error) == (
        "failed",
        "Clair could not index the image: fetcher: unexpected status code 401",
    )
