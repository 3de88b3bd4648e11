"""The worker process: configuration, the websocket session with the build manager, reconnects.

Configuration comes from the environment, and flags override it (``quay-builder --help``). The
worker registers, heartbeats every ``heartbeat_seconds`` (also while building: builds run in
subprocesses and the event loop stays free), runs each ``job`` it is given as a builder.job.Job,
and on ``cancel`` stops that job. When the connection drops, its jobs are stopped (the manager
requeues them) and the worker reconnects with a growing delay. SIGTERM or SIGINT stops the jobs,
closes the connection and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import random
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import connect

from builder import __version__, unpack
from builder.engine import Engine, detect_engine, make_engine
from builder.fetch import ssl_context
from builder.job import Job, JobLimits

log = logging.getLogger("builder")

WS_PATH = "/ws/builder/"
REGISTER_TIMEOUT_SECONDS = 30
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
EXIT_REFUSED = 2


@dataclass
class Config:
    server: str
    secret: str
    capacity: int = 1
    ca_file: str | None = None
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "quay-builder")
    engine: str = "auto"
    storage_driver: str = "vfs"
    host: str = field(default_factory=socket.gethostname)
    limits: JobLimits = JobLimits()

    @property
    def url(self) -> str:
        """The manager's websocket URL: ``SERVER`` with ``/ws/builder/`` when it names no path."""
        parts = urlsplit(self.server)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise SystemExit(f"quay-builder: SERVER must be ws://host[:port] or wss://host[:port], not {self.server!r}")
        path = parts.path if parts.path not in ("", "/") else WS_PATH
        return urlunsplit(parts._replace(path=path))


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"quay-builder: {name} must be a whole number, not {value!r}") from None


def parse_config(argv: list[str] | None = None) -> Config:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="quay-builder", description="Build worker: takes Dockerfile builds from a Quay-compatible server."
    )
    parser.add_argument("--server", default=env.get("SERVER", ""), help="ws://host[:port] or wss://... (SERVER)")
    parser.add_argument(
        "--secret-file",
        default=None,
        help="read the registration secret from this file (else BUILDER_REGISTRATION_SECRET)",
    )
    parser.add_argument("--capacity", type=int, default=_int_env("BUILDER_CAPACITY", 1), help="(BUILDER_CAPACITY)")
    parser.add_argument("--ca-file", default=env.get("BUILDER_CA_FILE") or None, help="CA bundle (BUILDER_CA_FILE)")
    parser.add_argument("--work-dir", default=env.get("BUILDER_WORK_DIR") or None, help="(BUILDER_WORK_DIR)")
    parser.add_argument(
        "--engine",
        default=env.get("BUILDER_ENGINE", "auto"),
        choices=("auto", "buildah", "docker"),
        help="(BUILDER_ENGINE)",
    )
    parser.add_argument(
        "--storage-driver", default=env.get("BUILDER_STORAGE_DRIVER", "vfs"), help="(BUILDER_STORAGE_DRIVER)"
    )
    parser.add_argument("--host-name", default=env.get("BUILDER_HOST") or socket.gethostname(), help="(BUILDER_HOST)")
    parser.add_argument("--log-level", default=env.get("BUILDER_LOG_LEVEL", "INFO"), help="(BUILDER_LOG_LEVEL)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # websockets logs every frame at DEBUG, and frames carry the registration secret and the jobs'
    # registry tokens: never below INFO.
    logging.getLogger("websockets").setLevel(max(logging.getLogger().level, logging.INFO))
    if not args.server:
        parser.error("SERVER (or --server) is required")
    if args.secret_file:
        secret = Path(args.secret_file).read_text().strip()
    else:
        secret = env.get("BUILDER_REGISTRATION_SECRET", "")
    if not secret:
        parser.error("BUILDER_REGISTRATION_SECRET (or --secret-file) is required")
    if args.capacity < 1:
        parser.error("the capacity must be at least 1")
    limits = JobLimits(
        max_package_bytes=_int_env("BUILDER_MAX_PACKAGE_BYTES", JobLimits.max_package_bytes),
        unpack=unpack.Limits(
            max_entries=_int_env("BUILDER_MAX_ENTRIES", unpack.Limits.max_entries),
            max_bytes=_int_env("BUILDER_MAX_UNPACKED_BYTES", unpack.Limits.max_bytes),
        ),
    )
    config = Config(
        server=args.server,
        secret=secret,
        capacity=args.capacity,
        ca_file=args.ca_file,
        engine=args.engine,
        storage_driver=args.storage_driver,
        host=args.host_name,
        limits=limits,
    )
    if args.work_dir:
        config.work_dir = Path(args.work_dir)
    config.url  # noqa: B018 - validates SERVER before anything starts
    return config


class Slot:
    """This process's own area of the work directory (``w<N>``: storage and jobs), held by a lock
    so that several workers on one machine never share buildah storage."""

    def __init__(self, work_dir: Path):
        work_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            path = work_dir / f"w{n}"
            path.mkdir(exist_ok=True)
            handle = open(path / "lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.path, self._handle = path, handle
            break
        else:
            raise SystemExit(f"quay-builder: no free slot in {work_dir}")
        self.jobs = self.path / "jobs"
        self.storage = self.path / "storage"
        # Jobs of a previous process in this slot died with it: their directories are ours to remove.
        unpack.remove_tree(self.jobs)
        self.jobs.mkdir()
        self.storage.mkdir(exist_ok=True)


class RegistrationRefused(Exception):
    pass


class Session:
    """One websocket connection: register, heartbeat, run jobs."""

    def __init__(self, ws, config: Config, engine: Engine, slot: Slot):
        self.ws = ws
        self.config = config
        self.engine = engine
        self.slot = slot
        self.jobs: dict[str, Job] = {}
        self.tasks: set[asyncio.Task] = set()
        self.heartbeat_seconds = 5.0
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict) -> None:
        async with self._send_lock:
            await self.ws.send(json.dumps(message))

    async def register(self) -> None:
        await self.send(
            {
                "type": "register",
                "secret": self.config.secret,
                "host": self.config.host,
                "version": __version__,
                "capacity": self.config.capacity,
                "engine": self.engine.name,
            }
        )
        try:
            raw = await asyncio.wait_for(self.ws.recv(), REGISTER_TIMEOUT_SECONDS)
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 4003:
                raise RegistrationRefused(exc.rcvd.reason or "refused") from None
            raise
        message = json.loads(raw)
        if message.get("type") == "refused":
            raise RegistrationRefused(message.get("reason") or "refused")
        if message.get("type") != "registered":
            raise ConnectionError(f"unexpected first message {message.get('type')!r}")
        self.heartbeat_seconds = float(message.get("heartbeat_seconds") or 5)
        log.info("registered as %s with %s (engine %s)", message.get("worker_id"), self.config.url, self.engine.name)

    async def heartbeat(self) -> None:
        """One heartbeat per build held (each build's clock is its own), or one naming none.

        ``build_ids`` lists every build this worker still holds: a build the manager told it to
        stop is let go once it is missing from that list, and the worker can take new jobs.
        """
        held = list(self.jobs)
        for build_id in held or [None]:
            await self.send({"type": "heartbeat", "build_id": build_id, "build_ids": held})

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            await self.heartbeat()

    async def receive(self) -> None:
        async for raw in self.ws:
            try:
                message = json.loads(raw)
            except ValueError:
                log.warning("ignored a message that is not JSON")
                continue
            kind = message.get("type")
            build_id = str(message.get("build_id"))
            if kind == "job":
                self.start_job(message)
            elif kind == "cancel":
                job = self.jobs.get(build_id)
                # A cancel names the attempt it stops; an older attempt's cancel is stale.
                if job is not None and message.get("attempt") in (None, job.attempt):
                    log.info("build %s: cancelled by the manager", build_id)
                    self._spawn(job.cancel())
            elif kind == "phase_ack":
                job = self.jobs.get(build_id)
                if job is not None:
                    job.on_phase_ack(message)
            elif kind in ("result_ack", "registered"):
                pass
            else:
                log.debug("ignored message %r", kind)

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def start_job(self, spec: dict) -> None:
        build_id = str(spec.get("build_id"))
        if build_id in self.jobs:
            log.warning("build %s: already running here, ignoring the duplicate job", build_id)
            return
        job = Job(
            spec,
            engine=self.engine,
            jobs_dir=self.slot.jobs,
            send=self.send,
            ca_file=self.config.ca_file,
            limits=self.config.limits,
        )
        self.jobs[build_id] = job
        log.info("build %s: attempt %s for %s", build_id, job.attempt, spec.get("repository"))

        async def run():
            try:
                await job.run()
            finally:
                self.jobs.pop(build_id, None)
                if not self.jobs:
                    await self.engine.prune()
                # Tell the manager at once that this build is let go: it may send the next job.
                with contextlib.suppress(Exception):
                    await self.heartbeat()

        self._spawn(run())

    async def stop_jobs(self) -> None:
        for job in list(self.jobs.values()):
            await job.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


async def serve(config: Config, stop: asyncio.Event, *, engine: Engine | None = None) -> int:
    """Stay connected until ``stop`` is set; returns the exit status."""
    slot = Slot(config.work_dir)
    if engine is None:
        engine = make_engine(
            detect_engine(config.engine), storage_dir=slot.storage, storage_driver=config.storage_driver
        )
    url = config.url
    ssl = ssl_context(config.ca_file) if url.startswith("wss://") else None
    delay = BACKOFF_FIRST_SECONDS
    await engine.prune()
    while not stop.is_set():
        session = None
        try:
            async with connect(
                url, ssl=ssl, max_size=MAX_MESSAGE_BYTES, open_timeout=REGISTER_TIMEOUT_SECONDS, proxy=None
            ) as ws:
                session = Session(ws, config, engine, slot)
                await session.register()
                delay = BACKOFF_FIRST_SECONDS
                tasks = [
                    asyncio.create_task(session.receive()),
                    asyncio.create_task(session.heartbeats()),
                    asyncio.create_task(stop.wait()),
                ]
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()
                await session.stop_jobs()
                if stop.is_set():
                    await ws.close(1000, "worker stopping")
                    return 0
                log.warning("the build manager closed the connection")
        except RegistrationRefused as exc:
            log.error("the build manager refused this worker: %s", exc)
            return EXIT_REFUSED
        except (TimeoutError, OSError, websockets.WebSocketException, ConnectionError, ValueError) as exc:
            log.warning("connection to %s failed: %s", url, exc)
        finally:
            if session is not None:
                await session.stop_jobs()
        # Jittered, growing delay: a restarted server is not hit by every worker at once.
        wait = delay * (0.5 + random.random() / 2)
        delay = min(delay * 2, BACKOFF_MAX_SECONDS)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
    return 0


async def _main(config: Config) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return await serve(config, stop)


def main(argv: list[str] | None = None) -> int:
    config = parse_config(argv)
    return asyncio.run(_main(config))


if __name__ == "__main__":
    sys.exit(main())
