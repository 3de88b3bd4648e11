"""The one HTTP client for every request the server makes to an address a user gave it.

Webhooks, Slack/Flowdock/HipChat messages, builds from a URL and trigger callbacks all reach
hosts chosen by users, so each request is guarded the same way (server-side request forgery):

- only ``http`` and ``https`` URLs;
- the host name is resolved here and every address it resolves to is checked *at connect time*,
  on the socket that is then used: no loopback, private, link-local (cloud metadata
  ``169.254.169.254``), shared, multicast, reserved or unspecified (``0.0.0.0``) address, also
  not when wrapped in IPv6 (``::ffff:127.0.0.1``, NAT64, 6to4, Teredo). Checking the name first
  and connecting later would let a DNS answer change in between (DNS rebinding). The operator may
  open networks on purpose with ``OUTBOUND_ALLOWED_NETWORKS`` (CIDRs);
- redirects are never followed (a public URL answering ``302 Location: http://10.0.0.1/`` is a
  classic way around the address check), environment proxies are never used;
- one deadline for the whole exchange (connect, TLS, request, headers, body), enforced by closing
  the socket when it passes, so a server that trickles bytes cannot hold a worker;
- the response body is read up to a cap and the rest discarded.

``request`` returns an ``OutboundResponse`` for any HTTP status; it raises ``DestinationRefused``
when the guard says no (the same request would be refused again: a permanent error) and
``OutboundFailed`` when the exchange itself failed (connection refused, timeout, TLS: worth a
retry).
"""

from __future__ import annotations

import base64
import contextvars
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import urllib3
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

USER_AGENT = "quay-django"
SCHEMES = ("http", "https")
# Host names made only of digits, dots and hex markers are IPv4 addresses in a form the
# resolver still accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``): refused as names, so
# that what an admin reads in a URL is what gets connected to.
NUMERIC_HOST_RE = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*\.?$", re.IGNORECASE)
NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundError(Exception):
    """Base of the errors of an outbound request."""


class DestinationRefused(OutboundError):
    """The URL or the address it resolves to is not allowed; retrying cannot help."""


class OutboundFailed(OutboundError):
    """The exchange failed (connection, TLS, timeout, broken response); a retry may succeed."""


class OutboundTimeout(OutboundFailed):
    """The exchange did not finish before the deadline."""


@dataclass
class OutboundResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool
    elapsed: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text_excerpt(self, limit: int = 1024) -> str:
        return self.body[:limit].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Target:
    """A checked URL: what to connect to, and the credentials it carried (sent as Basic auth)."""

    scheme: str
    host: str
    port: int
    path: str
    basic_auth: str | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------
# Addresses


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return list(getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", []))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (and that routers or the kernel would reach)."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def address_allowed(ip: IPAddress) -> bool:
    """Whether the server may connect to ``ip``: a public unicast address, or one the operator
    allowed in OUTBOUND_ALLOWED_NETWORKS."""
    allowed = allowed_networks()
    if any(ip.version == net.version and ip in net for net in allowed):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if ip.ipv4_mapped is not None:
            # ``::ffff:a.b.c.d`` is a.b.c.d on the wire: the operator's IPv4 allowances apply.
            return address_allowed(ip.ipv4_mapped)
        if any(not address_allowed(inner) for inner in embedded):
            return False
    return ip.is_global and not ip.is_multicast


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# URLs


def check_url(url: str, *, resolve: bool = False) -> Target:
    """Parse and check a URL the way ``request`` will use it; raise DestinationRefused if it can
    never be sent. With ``resolve``, also look the host up now and refuse a name whose every
    address is forbidden (for early feedback when a URL is saved: the real check is still the
    one at connect time)."""
    if not isinstance(url, str) or not url or len(url) > 2048 or any(c.isspace() for c in url):
        raise DestinationRefused("Invalid URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationRefused("Invalid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise DestinationRefused("Only http and https URLs are allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise DestinationRefused("The URL has no host")
    literal = _literal_ip(host)
    if literal is None:
        if NUMERIC_HOST_RE.match(host):
            raise DestinationRefused("Numeric host names must be written as a plain IP address")
        try:
            host.encode("idna")
        except UnicodeError:
            raise DestinationRefused("Invalid host name") from None
    elif not address_allowed(literal):
        raise DestinationRefused(f"The address {literal} is not allowed")
    basic_auth = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        basic_auth = "Basic " + base64.b64encode(credentials.encode()).decode()
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default_port = 443 if scheme == "https" else 80
    target = Target(scheme=scheme, host=host, port=port or default_port, path=path, basic_auth=basic_auth)
    if resolve and literal is None:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, target.port, type=socket.SOCK_STREAM)}
        except (OSError, UnicodeError):
            addresses = set()  # not resolvable now; it may be later, and connect time decides
        ips = [ip for ip in (_literal_ip(a) for a in addresses) if ip is not None]
        if ips and not any(address_allowed(ip) for ip in ips):
            raise DestinationRefused(f"{host} resolves to an address that is not allowed ({ips[0]})")
    return target


# ---------------------------------------------------------------------------------------------
# Connections

# The sockets opened for the request running in this thread, so that its deadline can close them.
_open_sockets: contextvars.ContextVar[list[socket.socket] | None] = contextvars.ContextVar(
    "outbound_open_sockets", default=None
)


def _guarded_socket(host: str, port: int, timeout, socket_options) -> socket.socket:
    """Resolve ``host`` and connect to the first address that is allowed (the check and the
    connect use the same resolved address)."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OutboundFailed(f"Cannot resolve {host}: {exc.strerror or exc}") from None
    refused: list[str] = []
    last_error: OSError | None = None
    for family, kind, proto, _, address in infos:
        ip = _literal_ip(address[0])
        if ip is None or not address_allowed(ip):
            refused.append(address[0])
            continue
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if isinstance(timeout, int | float):
                sock.settimeout(timeout)
            registry = _open_sockets.get()
            if registry is not None:
                registry.append(sock)
            sock.connect(address)
            return sock
        except OSError as exc:
            last_error = exc
            sock.close()
    if last_error is not None:
        raise last_error
    raise DestinationRefused(f"{host} resolves to an address that is not allowed ({refused[0] if refused else '?'})")


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_socket(self._dns_host, self.port, self.timeout, self.socket_options)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_socket(self._dns_host, self.port, self.timeout, self.socket_options)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def _tls_context(client_cert: tuple[str, str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=getattr(settings, "OUTBOUND_CA_FILE", "") or None)
    if client_cert is not None:
        context.load_cert_chain(certfile=client_cert[0], keyfile=client_cert[1])
    return context


def _pool(target: Target, timeout: float, client_cert: tuple[str, str] | None) -> HTTPConnectionPool:
    budget = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":
        return _GuardedHTTPSPool(
            target.host, target.port, maxsize=1, timeout=budget, retries=False, ssl_context=_tls_context(client_cert)
        )
    return _GuardedHTTPPool(target.host, target.port, maxsize=1, timeout=budget, retries=False)


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in list(sockets):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float | None = None,
    max_response_bytes: int | None = None,
    client_cert: tuple[str, str] | None = None,
    sink: BinaryIO | None = None,
) -> OutboundResponse:
    """Send one request through the guard (see the module's docstring) and read the answer.

    With ``sink``, the body is written there as it arrives instead of being kept in memory
    (large downloads: a build from a URL); the response's ``body`` is then empty. The cap still
    applies: past it, ``truncated`` is set and what the sink holds is incomplete."""
    target = check_url(url)
    timeout = float(timeout if timeout is not None else settings.OUTBOUND_TIMEOUT_SECONDS)
    cap = int(max_response_bytes if max_response_bytes is not None else settings.OUTBOUND_MAX_RESPONSE_BYTES)
    sent_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
    if target.basic_auth and "Authorization" not in sent_headers:
        sent_headers["Authorization"] = target.basic_auth
    started = time.monotonic()
    sockets: list[socket.socket] = []
    context_token = _open_sockets.set(sockets)
    # The deadline: closing the socket wakes whatever read or write is blocked on it.
    watchdog = threading.Timer(timeout, _close_all, (sockets,))
    watchdog.daemon = True
    pool = None
    try:
        pool = _pool(target, timeout, client_cert)
        watchdog.start()
        response = pool.urlopen(
            method.upper(),
            target.path,
            body=body,
            headers=sent_headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            assert_same_host=False,
        )
        chunks, size, truncated = [], 0, False
        try:
            while True:
                chunk = response.read(min(65536, cap + 1 - size), decode_content=False)
                if not chunk:
                    break
                size += len(chunk)
                if sink is None:
                    chunks.append(chunk)
                elif size <= cap:
                    sink.write(chunk)
                if size > cap:
                    truncated = True
                    break
        finally:
            response.release_conn()
            response.close()
        elapsed = time.monotonic() - started
        if elapsed >= timeout:
            raise OutboundTimeout(f"No complete answer within {timeout:g}s")
        data = b"".join(chunks)[:cap]
        return OutboundResponse(
            status=response.status,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=data,
            truncated=truncated,
            elapsed=elapsed,
        )
    except OutboundError:
        raise
    except ssl.SSLError as exc:
        raise OutboundFailed(f"TLS error: {exc.reason or exc}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if time.monotonic() - started >= timeout:
            raise OutboundTimeout(f"No complete answer within {timeout:g}s") from None
        reason = getattr(exc, "reason", None) or exc
        raise OutboundFailed(f"Request failed: {reason}") from None
    finally:
        watchdog.cancel()
        _open_sockets.reset(context_token)
        if pool is not None:
            pool.close()
        _close_all(sockets)
        for sock in sockets:
            sock.close()


def post_json(url: str, body: bytes, *, headers: dict[str, str] | None = None, **kwargs) -> OutboundResponse:
    """POST a JSON document (already serialized: signatures cover these exact bytes)."""
    return request("POST", url, headers={"Content-Type": "application/json", **(headers or {})}, body=body, **kwargs)
