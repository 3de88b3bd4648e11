"""One job from start to result: fetch, unpack, pull, build, push (docs/BUILDS.md, "Websocket
protocol").

The job talks to the manager through ``send`` (a coroutine taking one message) and hears back
through ``on_phase_ack``. ``cancel()`` (the manager's ``cancel``, a refused phase, a lost
connection or the worker stopping) kills the running command; a cancelled job reports nothing
more. Whatever happens, the job's directory and its local image are removed at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from builder import fetch, unpack
from builder.engine import Engine, registry_host
from builder.errors import DOCKERFILE, INTERNAL, PACKAGE, JobError
from builder.processes import Processes

log = logging.getLogger("builder.job")

LOG_BATCH_ENTRIES = 50
LOG_BATCH_BYTES = 256 * 1024
LOG_FLUSH_SECONDS = 0.2
PHASE_ACK_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class JobLimits:
    max_package_bytes: int = 512 * 1024 * 1024
    unpack: unpack.Limits = unpack.Limits()


class Stopped(Exception):
    """The job was cancelled or lost its manager: end quietly."""


def base_images(dockerfile_text: str) -> list[str]:
    """The images the Dockerfile's FROM lines name, minus ``scratch``, earlier stages and names
    built from ARGs (buildah resolves those itself). Raises JobError without any FROM."""
    lines, current = [], ""
    for raw in dockerfile_text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    images, stages, saw_from = [], set(), False
    for line in lines:
        words = line.split()
        if not words or words[0].upper() != "FROM":
            continue
        saw_from = True
        args = [w for w in words[1:] if not w.startswith("--")]
        if not args:
            raise JobError(DOCKERFILE, "A FROM instruction of the Dockerfile names no image.")
        image = args[0]
        if len(args) >= 3 and args[1].lower() == "as":
            stages.add(args[2].lower())
        if image.lower() == "scratch" or image.lower() in stages or "$" in image:
            continue
        if image not in images:
            images.append(image)
    if not saw_from:
        raise JobError(DOCKERFILE, "The Dockerfile has no FROM instruction.")
    return images


class Job:
    """One assignment of one build (``build_id`` + ``attempt``) on this worker."""

    def __init__(
        self,
        spec: dict,
        *,
        engine: Engine,
        jobs_dir: Path,
        send: Callable[[dict], Awaitable[None]],
        ca_file: str | None = None,
        limits: JobLimits = JobLimits(),
    ):
        self.spec = spec
        self.build_id = str(spec["build_id"])
        self.attempt = spec.get("attempt", 1)
        self.engine = engine
        self.jobs_dir = Path(jobs_dir)
        self._send = send
        self.ca_file = ca_file
        self.limits = limits
        self.processes = Processes()
        self.cancelled = threading.Event()
        self.phase = None
        self.local_image = f"localhost/quay-build-{self.build_id}-{self.attempt}:latest"
        self.directory: Path | None = None
        self._acks: dict[str, asyncio.Future] = {}
        self._log: list[dict] = []
        self._log_bytes = 0
        self._last_flush = time.monotonic()
        self._image_built = False

    # -- talking to the manager ------------------------------------------------------------------

    def _message(self, type_: str, **fields) -> dict:
        return {"type": type_, "build_id": self.build_id, "attempt": self.attempt, **fields}

    async def send(self, message: dict) -> None:
        if self.cancelled.is_set():
            raise Stopped()
        try:
            await self._send(message)
        except Exception as exc:  # the connection is gone: the manager requeues the build
            log.warning("build %s: lost the manager (%s)", self.build_id, exc)
            await self.cancel()
            raise Stopped() from None

    async def log_entry(self, entry: dict) -> None:
        self._log.append(entry)
        self._log_bytes += sum(len(str(v)) for v in entry.values())
        if (
            len(self._log) >= LOG_BATCH_ENTRIES
            or self._log_bytes >= LOG_BATCH_BYTES
            or time.monotonic() - self._last_flush >= LOG_FLUSH_SECONDS
        ):
            await self.flush()

    async def log_line(self, line: str) -> None:
        await self.log_entry({"stream": line})

    async def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._log:
            return
        entries, self._log, self._log_bytes = self._log, [], 0
        await self.send(self._message("log", entries=entries))

    async def set_phase(self, phase: str, *, status: dict | None = None, wait_ack: bool = False) -> None:
        await self.flush()
        self.phase = phase
        future = None
        if wait_ack:
            future = asyncio.get_running_loop().create_future()
            self._acks[phase] = future
        await self.send(self._message("phase", phase=phase, status=status or {}))
        if future is None:
            return
        try:
            accepted = await asyncio.wait_for(future, PHASE_ACK_TIMEOUT_SECONDS)
        except TimeoutError:
            # Without the manager's yes nothing may be pushed: a push must never happen twice.
            raise JobError(INTERNAL, f"The build manager did not acknowledge the {phase} phase.") from None
        if not accepted:
            raise Stopped()

    def on_phase_ack(self, message: dict) -> None:
        """The manager's answer to a phase; a refusal (the build was cancelled) stops the job."""
        accepted = bool(message.get("accepted"))
        future = self._acks.pop(message.get("phase"), None)
        if future is not None and not future.done():
            future.set_result(accepted)
        if not accepted:
            log.info("build %s: phase %s refused (%s)", self.build_id, message.get("phase"), message.get("reason"))
            asyncio.get_running_loop().create_task(self.cancel())

    async def cancel(self) -> None:
        """Stop for good: kill the running command and report nothing more."""
        self.cancelled.set()
        for future in self._acks.values():
            if not future.done():
                future.set_result(False)
        await self.processes.kill()

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise Stopped()

    # -- the job ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the job to its result (or to a quiet stop) and clean up."""
        try:
            self.directory = Path(self.jobs_dir, f"{self.build_id}-{self.attempt}-{uuid.uuid4().hex[:8]}")
            self.directory.mkdir(mode=0o700, parents=True)
            await self._run()
        except Stopped:
            log.info("build %s: stopped", self.build_id)
        except JobError as exc:
            await self._fail(exc.kind, exc.message)
        except Exception as exc:  # a bug or the machine (disk full ...): the build must still end
            log.exception("build %s: internal error", self.build_id)
            await self._fail(INTERNAL, f"The build worker failed: {exc}")
        finally:
            await self._cleanup()

    async def _fail(self, kind: str, message: str) -> None:
        if self.cancelled.is_set():
            return
        try:
            await self.log_entry({"error": message})
            await self.flush()
            await self.send(self._message("result", ok=False, error_kind=kind, message=message))
        except Stopped:
            pass

    async def _run(self) -> None:
        spec = self.spec
        root = self.directory / "src"
        await self.set_phase("unpacking")
        await self._fetch(root)
        self._check()
        context, dockerfile = unpack.resolve_context(
            root, context=spec.get("context") or "", dockerfile_path=spec.get("dockerfile_path") or "Dockerfile"
        )
        images = base_images(dockerfile.read_text(encoding="utf-8", errors="replace"))

        registry = spec["registry"]
        tls_verify = not spec.get("registry_insecure", False)
        pull = spec.get("pull_credentials") or None
        # Base images on the job's registry: the pull robot when given, else the job token (which
        # reads the job's own repository and whatever is public).
        pull_user = (pull["username"], pull["password"]) if pull else ("$token", spec["token"])
        pull_creds = self.engine.write_credentials(self.directory / "pull-auth", {registry: pull_user})
        push_creds = self.engine.write_credentials(self.directory / "push-auth", {registry: ("$token", spec["token"])})

        await self.set_phase("pulling", status={"base_images": images})
        await self.engine.ready()
        for image in images:
            self._check()
            await self.log_line(f"Pulling {image}\n")
            on_registry = registry_host(image) == registry
            await self.engine.pull(
                self.processes, image, creds=pull_creds, tls_verify=tls_verify or not on_registry, on_line=self.log_line
            )
        self._check()

        await self.set_phase("building")
        self._image_built = True  # from here on a (partial) local image may exist
        image_id = await self.engine.build(
            self.processes,
            context=context,
            dockerfile=dockerfile,
            tag=self.local_image,
            creds=pull_creds,
            tls_verify=tls_verify,
            iid_file=self.directory / "image-id",
            on_line=self.log_line,
            on_idle=self.flush,
        )
        self._check()

        await self.set_phase("pushing", wait_ack=True)
        digests: list[str] = []
        for tag in spec.get("tags") or ["latest"]:
            self._check()
            dest = f"{registry}/{spec['repository']}:{tag}"
            await self.log_line(f"Pushing {dest}\n")
            digest = await self.engine.push(
                self.processes,
                self.local_image,
                dest,
                creds=push_creds,
                tls_verify=tls_verify,
                digest_file=self.directory / f"digest-{len(digests)}",
                on_line=self.log_line,
            )
            self._check()
            if digest not in digests:
                digests.append(digest)
        await self.flush()
        await self.send(self._message("result", ok=True, image_id=image_id, manifest_digests=digests))

    async def _fetch(self, root: Path) -> None:
        spec = self.spec
        git = spec.get("git") or None
        if git:
            await fetch.git_checkout(
                git["url"],
                git["sha"],
                root,
                private_key=git.get("private_key"),
                work_dir=self.directory,
                processes=self.processes,
                cancelled=self.cancelled,
            )
            await self.log_line(f"Checked out {git['sha']}\n")
            return
        url = spec.get("package_url")
        if not url:
            raise JobError(PACKAGE, "The job names no build package.")
        package = self.directory / "package"
        size = await asyncio.to_thread(
            fetch.download,
            url,
            package,
            token=spec["token"],
            max_bytes=self.limits.max_package_bytes,
            ca_file=self.ca_file,
            cancelled=self.cancelled,
        )
        self._check()
        root.mkdir()
        kind = await asyncio.to_thread(
            unpack.unpack_package,
            package,
            root,
            dockerfile_path=spec.get("dockerfile_path") or "Dockerfile",
            limits=self.limits.unpack,
        )
        os.unlink(package)
        await self.log_line(f"Unpacked the build package ({kind}, {size} bytes)\n")

    async def _cleanup(self) -> None:
        try:
            await self.processes.kill()
            if self._image_built:
                await self.engine.remove_image(self.processes, self.local_image)
        except Exception:
            log.exception("build %s: removing the local image failed", self.build_id)
        if self.directory is not None:
            await asyncio.to_thread(unpack.remove_tree, self.directory)
