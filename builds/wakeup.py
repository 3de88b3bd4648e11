"""Cross-process wake-ups for the websocket consumers (build workers and live build logs).

The consumers live in the Daphne process; the changes that concern them happen anywhere: the
Celery worker assigns a build (``dispatch_pending``), gunicorn cancels one, the sweeper requeues
one. Messages here carry only ids ("look again at worker X", "build Y changed"); the consumer
that receives one reads the database, which stays the only state, so a lost or repeated
wake-up costs at most a delay until the worker's next heartbeat, never a wrong result.

Two transports:

- With ``REDIS_URL`` the Channels layer is channels-redis and reaches every Daphne process by
  itself: wake-ups are plain ``group_send`` calls.
- Without Redis (the embedded default) the layer is Channels' in-memory one, which only reaches
  consumers of its own process. Channels ships no layer that crosses processes without a server
  (its only cross-process layers need Redis or a database server we do not run here), so this
  module carries the ids itself: each Daphne process binds a Unix datagram socket
  ``DATA_DIR/run/ws-<pid>.sock`` when its first consumer connects, and a sender writes one
  datagram to every such socket. The receiving process hands it to its in-memory layer as a
  ``group_send``; groups without a consumer in that process are no-ops, so each message reaches
  exactly the consumers concerned. Datagrams arrive whole and at once (no polling): a dispatch
  reaches the worker in about a millisecond. A socket left by a process that died answers
  ECONNREFUSED (or is gone, ENOENT) and is removed by the next sender.

Groups: ``builder-<worker uuid>`` (one worker's consumer), ``builders`` (every worker consumer),
``build-<build uuid>`` (live viewers of one build).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import threading
from pathlib import Path

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

BUILDERS_GROUP = "builders"
# The consumer handler each group's messages go to (a message's "type" names the handler); the
# datagram listener only forwards these pairs, whatever else arrives on its socket.
WORKER_WAKE = "builder.wake"
BUILD_CHANGED = "build.changed"
# A datagram is a few dozen bytes; anything longer is not ours.
_MAX_DATAGRAM = 1024
# A sender waits this long for room in a busy receiver's queue before dropping the wake-up (the
# worker's next heartbeat catches up on whatever it missed).
_SEND_TIMEOUT_SECONDS = 0.5


def worker_group(worker_uuid) -> str:
    return f"builder-{worker_uuid}"


def build_group(build_uuid) -> str:
    return f"build-{build_uuid}"


# ---------------------------------------------------------------------------------------------
# Sending (any process, synchronous code: services, tasks, after a commit)


def wake_worker(worker) -> None:
    """Tell the consumer of ``worker`` (a BuildWorker) to look for a job to send or a cancel."""
    _publish(worker_group(worker.uuid), WORKER_WAKE)


def wake_all() -> None:
    """Tell every worker consumer to look again (e.g. after a change to every build)."""
    _publish(BUILDERS_GROUP, WORKER_WAKE)


def build_changed(build_uuid) -> None:
    """Tell the live viewers of a build that it has new log entries or a new phase."""
    _publish(build_group(build_uuid), BUILD_CHANGED)


def _cross_process_layer():
    """The channel layer when it reaches other processes by itself, else None."""
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return None
    return layer


def _publish(group: str, kind: str) -> None:
    layer = _cross_process_layer()
    if layer is not None:
        try:
            async_to_sync(layer.group_send)(group, {"type": kind})
        except Exception:  # a wake-up is an optimisation: heartbeats and the sweeper catch up
            logger.exception("wake-up %s for %s not sent", kind, group)
        return
    _send_datagrams({"g": group, "t": kind})


def run_dir() -> Path:
    return Path(settings.DATA_DIR) / "run"


# sockaddr_un.sun_path holds 108 bytes with the closing NUL; a deep DATA_DIR (a test's or a
# benchmark's temp directory) makes longer socket paths than that.
_SUN_PATH_MAX = 107
_dir_fds: dict[str, int] = {}
_dir_fds_lock = threading.Lock()


def _address(path: Path) -> str:
    """The address that binds or reaches the socket file ``path``: the path itself, or when it is
    too long for a Unix socket address, the same file through an open descriptor of its directory
    (Linux resolves ``/proc/self/fd/N/name`` as the directory's own entry)."""
    text = str(path)
    if len(text.encode()) <= _SUN_PATH_MAX:
        return text
    directory = str(path.parent)
    with _dir_fds_lock:
        fd = _dir_fds.get(directory)
        if fd is None:
            fd = _dir_fds[directory] = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}"


def _send_datagrams(message: dict) -> int:
    """Send ``message`` to every Daphne process of this DATA_DIR; returns how many took it."""
    directory = run_dir()
    try:
        paths = [path for path in directory.iterdir() if path.name.startswith("ws-") and path.suffix == ".sock"]
    except FileNotFoundError:
        return 0  # no websocket process has started yet: nobody to wake
    data = json.dumps(message, separators=(",", ":")).encode()
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(_SEND_TIMEOUT_SECONDS)
        for path in paths:
            try:
                sock.sendto(data, _address(path))
                sent += 1
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                    # Left behind by a process that died without cleaning up.
                    _unlink_quietly(path)
                else:  # a full queue (timeout) or the like: drop this one wake-up
                    logger.warning("wake-up to %s not sent: %s", path, exc)
    return sent


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------------------
# Receiving (the Daphne process, async)


class _Listener:
    """This process's datagram socket and the event loop that reads it."""

    def __init__(self, sock: socket.socket, path: Path):
        self.sock = sock
        self.path = path
        self.loop: asyncio.AbstractEventLoop | None = None


_listener: _Listener | None = None
_pending: set[asyncio.Task] = set()


async def ensure_listener() -> None:
    """Start receiving datagram wake-ups in this process (once; a no-op with a Redis layer).

    Called by every consumer as it connects: a process whose consumers could be woken has
    necessarily connected one, so no startup hook is needed (Daphne runs no ASGI lifespan).
    """
    global _listener
    if _cross_process_layer() is not None:
        return
    loop = asyncio.get_running_loop()
    if _listener is None:
        directory = run_dir()
        # Only this installation's processes (same user) may write to the sockets.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"ws-{os.getpid()}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        _unlink_quietly(path)  # a previous process with our pid died without removing it
        sock.bind(_address(path))
        sock.setblocking(False)
        _listener = _Listener(sock, path)
        import atexit

        atexit.register(_unlink_quietly, path)
    if _listener.loop is not loop:
        # A new event loop in the same process (tests run one per scenario): read from it now.
        if _listener.loop is not None and not _listener.loop.is_closed():
            try:
                _listener.loop.remove_reader(_listener.sock.fileno())
            except RuntimeError:
                pass
        loop.add_reader(_listener.sock.fileno(), _on_readable, _listener, loop)
        _listener.loop = loop


def close_listener() -> None:
    """Stop receiving and remove this process's socket (at shutdown; tests between loops)."""
    global _listener
    if _listener is None:
        return
    listener, _listener = _listener, None
    if listener.loop is not None and not listener.loop.is_closed():
        try:
            listener.loop.remove_reader(listener.sock.fileno())
        except RuntimeError:
            pass
    listener.sock.close()
    _unlink_quietly(listener.path)


def _on_readable(listener: _Listener, loop: asyncio.AbstractEventLoop) -> None:
    layer = get_channel_layer()
    while True:
        try:
            data = listener.sock.recv(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            logger.exception("wake-up socket %s failed", listener.path)
            return
        message = _parse(data)
        if message is not None and layer is not None:
            task = loop.create_task(layer.group_send(message[0], {"type": message[1]}))
            # The loop keeps only a weak reference to a task: hold it until it is done.
            _pending.add(task)
            task.add_done_callback(_pending.discard)


def _parse(data: bytes) -> tuple[str, str] | None:
    try:
        message = json.loads(data)
        group, kind = message["g"], message["t"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(group, str) or kind not in (WORKER_WAKE, BUILD_CHANGED):
        return None
    if not (group == BUILDERS_GROUP or group.startswith(("builder-", "build-"))) or len(group) > 90:
        return None
    return group, kind
