"""The container engines a worker builds with: buildah (preferred) or a Docker engine.

Both take the same calls from builder.job: pull a base image, build, push one tag, remove the
local image. Credentials are written by the job into files of its own directory (a containers
auth file for buildah, a Docker config directory for docker), never put on a command line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from builder.errors import BUILD, DOCKERFILE, PULL, PUSH, JobError
from builder.processes import Processes

LineSink = Callable[[str], Awaitable[None]]
IdleHook = Callable[[], Awaitable[None]]

# How buildah/docker words the failures that are not the RUN step's fault.
_PULL_FAILURE = re.compile(
    r"creating build container|initializing source|pulling image|manifest unknown|repository does not exist"
    r"|pull access denied|failed to resolve source metadata|unable to find image|error pulling",
    re.IGNORECASE,
)
_DOCKERFILE_FAILURE = re.compile(
    r"unknown instruction|dockerfile parse error|parsing main dockerfile|no contents in|no from|"
    r"failed to parse|unknown flag|requires (?:at least|exactly) (?:one|two|\d+) argument|"
    r"missing from|no build stage",
    re.IGNORECASE,
)


def classify_build_failure(lines: list[str]) -> tuple[str, str]:
    """The error kind and message of a failed build, from the command's last lines."""
    errors = [line for line in lines if line.lower().startswith(("error", "fatal")) or "level=error" in line]
    message = errors[-1] if errors else (lines[-1] if lines else "the build failed")
    message = re.sub(r"^(?:error:\s*)+", "", message, flags=re.IGNORECASE)
    if _PULL_FAILURE.search(message):
        return PULL, message
    if _DOCKERFILE_FAILURE.search(message):
        return DOCKERFILE, message
    return BUILD, message


def registry_host(image: str) -> str | None:
    """The registry part of an image reference, or None for Docker Hub's short names."""
    first, sep, _rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def auth_entry(username: str, password: str) -> dict:
    return {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}


class Engine:
    """What a build engine offers a job."""

    name = "engine"

    def __init__(self, *, storage_dir: Path, storage_driver: str = "vfs"):
        self.storage_dir = Path(storage_dir)
        self.storage_driver = storage_driver
        # Held while pruning: a job that arrived meanwhile waits before its first engine command.
        self._pruning = asyncio.Lock()

    async def ready(self) -> None:
        """Wait until no prune is running (call before a job's first engine command)."""
        async with self._pruning:
            pass

    def write_credentials(self, path: Path, creds: dict[str, tuple[str, str]]) -> Path:
        """Store ``{registry host: (username, password)}`` at ``path`` for later commands."""
        raise NotImplementedError

    async def pull(self, processes: Processes, image: str, *, creds: Path, tls_verify: bool, on_line: LineSink):
        raise NotImplementedError

    async def build(
        self,
        processes: Processes,
        *,
        context: Path,
        dockerfile: Path,
        tag: str,
        creds: Path,
        tls_verify: bool,
        iid_file: Path,
        on_line: LineSink,
        on_idle: IdleHook,
    ) -> str:
        raise NotImplementedError

    async def push(
        self,
        processes: Processes,
        local: str,
        dest: str,
        *,
        creds: Path,
        tls_verify: bool,
        digest_file: Path,
        on_line: LineSink,
    ) -> str:
        raise NotImplementedError

    async def remove_image(self, processes: Processes, local: str) -> None:
        raise NotImplementedError

    async def prune(self) -> None:
        """Remove what interrupted builds left behind. Only called while no job is held; the lock
        is taken before the first await, so no job can start its engine commands meanwhile."""
        async with self._pruning:
            await self._prune()

    async def _prune(self) -> None:
        pass


class Buildah(Engine):
    """buildah with storage of this worker's own (``--root``/``--runroot`` under its slot)."""

    name = "buildah"

    def base(self) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.storage_dir / "root"),
            "--runroot",
            str(self.storage_dir / "run"),
            "--storage-driver",
            self.storage_driver,
        ]

    def env(self) -> dict:
        tmp = self.storage_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG")}
        # Big temporary files (layer blobs) stay on the worker's own disk area.
        env.update(TMPDIR=str(tmp), BUILDAH_ISOLATION="chroot", XDG_RUNTIME_DIR=str(self.storage_dir / "run"))
        return env

    def write_credentials(self, path: Path, creds: dict[str, tuple[str, str]]) -> Path:
        data = {"auths": {host: auth_entry(user, password) for host, (user, password) in creds.items()}}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        return path

    async def pull(self, processes, image, *, creds, tls_verify, on_line):
        argv = [*self.base(), "pull", "--authfile", str(creds), f"--tls-verify={str(tls_verify).lower()}", image]
        rc, lines = await processes.run(argv, env=self.env(), on_line=on_line)
        if rc != 0 and not processes.killed:
            detail = classify_build_failure(lines)[1]
            raise JobError(PULL, f"Pulling the base image {image} failed: {detail}")

    async def build(self, processes, *, context, dockerfile, tag, creds, tls_verify, iid_file, on_line, on_idle):
        argv = [
            *self.base(),
            "bud",
            "--isolation",
            "chroot",
            "--layers=false",
            "--format",
            "docker",
            # Base images were pulled in the pulling phase; only ARG-named ones are fetched here.
            "--pull=false",
            "--authfile",
            str(creds),
            f"--tls-verify={str(tls_verify).lower()}",
            "--iidfile",
            str(iid_file),
            "-f",
            str(dockerfile),
            "-t",
            tag,
            str(context),
        ]
        rc, lines = await processes.run(argv, env=self.env(), cwd=str(context), on_line=on_line, on_idle=on_idle)
        if processes.killed:
            return ""
        if rc != 0:
            kind, message = classify_build_failure(lines)
            raise JobError(kind, message)
        return iid_file.read_text().strip()

    async def push(self, processes, local, dest, *, creds, tls_verify, digest_file, on_line):
        argv = [
            *self.base(),
            "push",
            "--authfile",
            str(creds),
            f"--tls-verify={str(tls_verify).lower()}",
            "--digestfile",
            str(digest_file),
            local,
            f"docker://{dest}",
        ]
        rc, lines = await processes.run(argv, env=self.env(), on_line=on_line)
        if processes.killed:
            return ""
        if rc != 0:
            raise JobError(PUSH, f"Pushing {dest} failed: {classify_build_failure(lines)[1]}")
        return digest_file.read_text().strip()

    async def remove_image(self, processes, local):
        await Processes().run([*self.base(), "rmi", "--force", local], env=self.env())

    async def _prune(self):
        # Working containers of killed builds, then images no tag refers to any more.
        await Processes().run([*self.base(), "rm", "--all"], env=self.env())
        await Processes().run([*self.base(), "rmi", "--prune", "--force"], env=self.env())


class Docker(Engine):
    """A Docker engine through the ``docker`` client. The engine's storage is its own; the
    registry's insecure setting is the daemon's (``insecure-registries``), not ours."""

    name = "docker"

    def env(self, config_dir: Path | None = None) -> dict:
        env = dict(os.environ)
        if config_dir is not None:
            env["DOCKER_CONFIG"] = str(config_dir)
        return env

    def write_credentials(self, path: Path, creds: dict[str, tuple[str, str]]) -> Path:
        path.mkdir(mode=0o700)
        fd = os.open(path / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {host: auth_entry(u, p) for host, (u, p) in creds.items()}}, f)
        return path

    async def pull(self, processes, image, *, creds, tls_verify, on_line):
        rc, lines = await processes.run(["docker", "pull", image], env=self.env(creds), on_line=on_line)
        if rc != 0 and not processes.killed:
            raise JobError(PULL, f"Pulling the base image {image} failed: {classify_build_failure(lines)[1]}")

    async def build(self, processes, *, context, dockerfile, tag, creds, tls_verify, iid_file, on_line, on_idle):
        argv = ["docker", "build", "--progress=plain", "--iidfile", str(iid_file), "-f", str(dockerfile), "-t", tag]
        rc, lines = await processes.run(
            [*argv, str(context)], env=self.env(creds), cwd=str(context), on_line=on_line, on_idle=on_idle
        )
        if processes.killed:
            return ""
        if rc != 0:
            raise JobError(*classify_build_failure(lines))
        return iid_file.read_text().strip()

    async def push(self, processes, local, dest, *, creds, tls_verify, digest_file, on_line):
        env = self.env(creds)
        rc, lines = await processes.run(["docker", "tag", local, dest], env=env)
        if rc == 0:
            rc, lines = await processes.run(["docker", "push", dest], env=env, on_line=on_line)
        await Processes().run(["docker", "rmi", dest], env=env)
        if processes.killed:
            return ""
        found = [m.group(1) for line in lines if (m := re.search(r"digest: (sha256:[0-9a-f]{64})", line))]
        if rc != 0 or not found:
            raise JobError(PUSH, f"Pushing {dest} failed: {classify_build_failure(lines)[1]}")
        return found[-1]

    async def remove_image(self, processes, local):
        await Processes().run(["docker", "rmi", "--force", local], env=self.env())


def detect_engine(choice: str = "auto") -> str:
    """``buildah`` when installed, else ``docker`` when an engine answers (``auto``)."""
    if choice in ("buildah", "docker"):
        return choice
    if shutil.which("buildah"):
        return "buildah"
    if shutil.which("docker"):
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
        if result.returncode == 0:
            return "docker"
    raise SystemExit("quay-builder: neither buildah nor a running Docker engine was found (BUILDER_ENGINE)")


def make_engine(name: str, *, storage_dir: Path, storage_driver: str) -> Engine:
    cls = {"buildah": Buildah, "docker": Docker}[name]
    return cls(storage_dir=storage_dir, storage_driver=storage_driver)
