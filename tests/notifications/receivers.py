"""Real local receivers for the notification tests: an HTTP(S) server that records what it is
sent and answers from a script, and an SMTP server (aiosmtpd) that keeps the messages."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


@dataclass
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    # Hold the request (no answer) until this is set or the client goes away.
    hold: threading.Event | None = None
    # Send the status line, then one byte of header every ``trickle`` seconds, forever.
    trickle: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer_certificate: dict | None = None

    def json(self):
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        owner = self.server.owner
        received = Received(
            method=self.command,
            path=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            peer_certificate=peer,
        )
        reply = owner.record(received)
        if reply.hold is not None:
            while not reply.hold.wait(0.1):
                if owner.stopping.is_set():
                    return
            # The client may be gone by now: the answer goes nowhere then.
        if reply.delay:
            time.sleep(reply.delay)
        if reply.trickle:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            while not owner.stopping.is_set():
                time.sleep(reply.trickle)
                try:
                    self.wfile.write(b"X")
                    self.wfile.flush()
                except OSError:
                    return
            return
        try:
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            pass

    do_POST = do_GET = do_PUT = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: Receiver

    def handle_error(self, request, client_address):
        pass  # a client that hangs up or fails the TLS handshake is part of the tests


class _Server6(_Server):
    address_family = socket.AF_INET6


class Receiver:
    """A threaded HTTP server on a free port of ``host`` that records every request."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        server_class = _Server6 if ":" in host else _Server
        self.server = server_class((host, 0), _Handler)
        self.server.owner = self
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port = self.server.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self.requests: list[Received] = []
        self.script: list[Reply] = []
        self.default = Reply()
        self.stopping = threading.Event()
        self._arrived = threading.Condition()
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order (then with ``default``)."""
        self.script.extend(replies)

    def record(self, received: Received) -> Reply:
        with self._arrived:
            self.requests.append(received)
            reply = self.script.pop(0) if self.script else self.default
            self._arrived.notify_all()
        return reply

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self._arrived.wait(left)
            return list(self.requests)

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class _Mailbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 Message accepted"


class SmtpReceiver:
    """An SMTP server on a free port of 127.0.0.1 that keeps every message it accepts."""

    def __init__(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.mailbox = _Mailbox()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def messages(self):
        return self.mailbox.messages

    def wait_for(self, count: int, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        with self.mailbox.arrived:
            while len(self.mailbox.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} messages, got {len(self.mailbox.messages)}")
                self.mailbox.arrived.wait(left)
            return list(self.mailbox.messages)

    def stop(self):
        self.controller.stop()


def bodies(message) -> tuple[str, str]:
    """The text and HTML bodies of a multipart/alternative message."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html
