"""The guarded outbound client (quay_site/outbound.py) against real local servers: every way of
reaching a private address is refused before a byte is sent, unless the operator allowed that
network; redirects are never followed; one deadline covers the whole exchange; bodies are capped."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from quay_site import outbound
from tests.notifications.conftest import LOOPBACK
from tests.notifications.receivers import Receiver, Reply


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def target(guarded_receiver):
    """A receiver on 127.0.0.1 that must never get a request in these tests."""
    return guarded_receiver


LOCAL_FORMS = [
    "http://127.0.0.1:{port}/",
    "http://127.9.9.9:{port}/",
    "http://localhost:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::]:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f.0.0.1:{port}/",
    "http://0x7f000001:{port}/",
    "http://127.1:{port}/",
    "http://017700000001:{port}/",
]


@pytest.mark.parametrize("form", LOCAL_FORMS)
def test_it_refuses_every_spelling_of_this_machine(settings, target, form):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    url = form.format(port=target.port)
    with pytest.raises(outbound.DestinationRefused):
        outbound.request("POST", url, body=b"{}")
    assert target.requests == []


def test_it_refuses_the_ipv6_loopback_where_a_server_listens(settings):
    if not _ipv6_loopback_available():
        pytest.fail("this machine has no IPv6 loopback; the test needs one")
    server = Receiver(host="::1")
    try:
        settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK  # allows 127.0.0.1 only, not ::1
        with pytest.raises(outbound.DestinationRefused):
            outbound.request("GET", server.url("/"))
        assert server.requests == []
        settings.OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("::1/128")]
        assert outbound.request("GET", server.url("/")).status == 200
        assert len(server.requests) == 1
    finally:
        server.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
    ],
)
def test_it_refuses_private_link_local_metadata_and_wrapped_addresses(url):
    with pytest.raises(outbound.DestinationRefused):
        outbound.check_url(url)
    with pytest.raises(outbound.DestinationRefused):
        outbound.request("GET", url, timeout=2)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "javascript:1"])
def test_it_refuses_schemes_other_than_http_and_https(url):
    with pytest.raises(outbound.DestinationRefused):
        outbound.request("GET", url)


def test_a_name_that_resolves_to_loopback_is_refused_at_connect_time(settings, target):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    # The syntax check alone lets a name through; the address it resolves to is what counts.
    outbound.check_url(f"http://localhost:{target.port}/")
    with pytest.raises(outbound.DestinationRefused, match="not allowed"):
        outbound.request("GET", f"http://localhost:{target.port}/")
    with pytest.raises(outbound.DestinationRefused):
        outbound.check_url(f"http://localhost:{target.port}/", resolve=True)
    assert target.requests == []


def test_allowed_networks_open_exactly_what_they_name(settings, target):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    response = outbound.request("POST", target.url("/ok"), body=b"{}", headers={"Content-Type": "application/json"})
    assert response.status == 200 and response.body == b"ok"
    # localhost resolves to 127.0.0.1 as well: allowed through that address.
    assert outbound.request("GET", f"http://localhost:{target.port}/named").status == 200
    with pytest.raises(outbound.DestinationRefused):
        outbound.request("GET", f"http://127.0.0.2:{target.port}/")
    assert [r.path for r in target.requests] == ["/ok", "/named"]


def test_redirects_are_never_followed_even_to_allowed_addresses(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    first, second = Receiver(), Receiver()
    try:
        first.reply(
            Reply(status=302, headers={"Location": second.url("/stolen")}),
            Reply(status=307, headers={"Location": "http://169.254.169.254/latest/meta-data/"}),
            Reply(status=301, headers={"Location": "http://10.0.0.1/"}),
        )
        for _ in range(3):
            response = outbound.request("POST", first.url("/hook"), body=b"{}")
            assert 300 <= response.status < 400
        assert len(first.requests) == 3
        assert second.requests == []
    finally:
        first.stop()
        second.stop()


def test_environment_proxies_are_not_used(settings, target, monkeypatch):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert outbound.request("GET", target.url("/direct")).status == 200


def test_one_deadline_covers_a_server_that_never_answers(settings, target):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    target.reply(Reply(delay=5))
    started = time.monotonic()
    with pytest.raises(outbound.OutboundTimeout):
        outbound.request("GET", target.url("/slow"), timeout=0.5)
    assert time.monotonic() - started < 2


def test_one_deadline_covers_a_server_that_trickles_bytes(settings, target):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    # Each byte comes well within a per-read timeout; only a total deadline stops this.
    target.reply(Reply(trickle=0.1))
    started = time.monotonic()
    with pytest.raises(outbound.OutboundTimeout):
        outbound.request("GET", target.url("/trickle"), timeout=1.0)
    assert time.monotonic() - started < 2.5


def test_the_response_body_is_capped(settings, target):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    target.reply(Reply(body=b"x" * 1_000_000))
    response = outbound.request("GET", target.url("/big"), max_response_bytes=1000)
    assert response.status == 200 and response.truncated and response.body == b"x" * 1000


def test_a_connection_refused_is_a_retryable_failure(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(outbound.OutboundFailed):
        outbound.request("GET", f"http://127.0.0.1:{port}/", timeout=2)


def test_credentials_in_the_url_are_sent_as_basic_auth(settings, target):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    outbound.request("GET", f"http://hook%40user:p%3Ass@127.0.0.1:{target.port}/auth")
    assert target.requests[0].headers["authorization"] == "Basic aG9va0B1c2VyOnA6c3M="
    assert target.requests[0].path == "/auth"


# ---------------------------------------------------------------------------------------------
# HTTPS with a client certificate


def _certificate(name: str, issuer_key, issuer_name, *, ca: bool, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    certificate = builder.sign(issuer_key or key, hashes.SHA256())
    return key, certificate


def _write(path, key, certificate):
    path.with_suffix(".crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path.with_suffix(".crt")), str(path.with_suffix(".key"))


@pytest.fixture
def pki(tmp_path):
    ca_key, ca_cert = _certificate("Test CA", None, None, ca=True)
    server_key, server_cert = _certificate("127.0.0.1", ca_key, ca_cert.subject, ca=False)
    client_key, client_cert = _certificate("registry-client", ca_key, ca_cert.subject, ca=False)
    ca_file, _ = _write(tmp_path / "ca", ca_key, ca_cert)
    return {
        "ca": ca_file,
        "server": _write(tmp_path / "server", server_key, server_cert),
        "client": _write(tmp_path / "client", client_key, client_cert),
    }


def test_https_presents_the_client_certificate_the_server_requires(settings, pki):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    settings.OUTBOUND_CA_FILE = pki["ca"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki["server"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    server = Receiver(tls=context)
    try:
        response = outbound.request("POST", server.url("/tls"), body=b"{}", client_cert=pki["client"])
        assert response.status == 200
        subject = dict(item[0] for item in server.requests[0].peer_certificate["subject"])
        assert subject["commonName"] == "registry-client"
        with pytest.raises(outbound.OutboundFailed):
            outbound.request("POST", server.url("/tls"), body=b"{}")
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_https_checks_the_server_certificate(settings, pki):
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki["server"])
    server = Receiver(tls=context)
    try:
        # Without the test CA the server's certificate is not trusted.
        with pytest.raises(outbound.OutboundFailed, match="TLS|certificate"):
            outbound.request("GET", server.url("/"))
        assert server.requests == []
    finally:
        server.stop()
