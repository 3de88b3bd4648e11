"""What a run shares: options, the work directory, the servers and their client-side targets."""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import Session, Target, push_scope
from bench.profile import Profiler
from bench.report import Metric
from bench.servers import (
    GunicornWeb,
    MotoServer,
    NginxXAccel,
    PeerDistribution,
    PeerNginx,
    ProjectServer,
)
from bench.util import REPO_ROOT, free_port, http_status, rss_bytes

USER = "bench"
PEER_LABELS = {"Distribution", "nginx static", "moto direct"}
X_ACCEL_PREFIX = "/_blobs"
S3_BUCKET = "bench-blobs"

# Made in the project by ``manage.py shell`` once it runs: the repositories the metrics use and a
# robot with the rights automation would have. Prints one line: BENCH <json>.
SETUP_SCRIPT = """
import json
from accounts.models import Namespace, User
from accounts.services import robot_create
from registry.models import Repository, RepositoryPermission, Role
from registry.permissions import Principal
from registry.services import repository_create

owner = User.objects.get(username={user!r})
namespace = Namespace.objects.get(name={user!r})
as_owner = Principal(kind="user", user=owner)
repos = {{}}
for name, visibility in [("manifests", "private"), ("public", "public"), ("skopeo", "private")]:
    repos[name] = repository_create(namespace=namespace, name=name, principal=as_owner, visibility=visibility)
robot, token = robot_create(namespace=namespace, short_name="ci")
for name, role in [("manifests", Role.READ), ("public", Role.READ), ("skopeo", Role.WRITE)]:
    RepositoryPermission.objects.create(repository=repos[name], user=robot, role=role)
print("BENCH " + json.dumps({{"robot": robot.username, "token": token}}))
"""


@dataclass
class Options:
    runs: int
    warmup: int
    blob_mib: int
    concurrent_mib: int
    concurrent: int
    range_mib: int
    push_mib: int
    chunked_mib: int
    chunk_mib: int
    wrk_seconds: int
    wrk_connections: int
    burst_images: int
    burst_clients: int
    skopeo_mb: int
    skopeo_layers: int
    tags: int
    s3_blob_mib: int
    metrics: list[str]
    peers_dir: Path
    smoke: bool
    project_env: dict[str, str] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Context:
    def __init__(self, opts: Options, workdir: Path, profiler: Profiler | None = None):
        self.opts = opts
        self.profiler = profiler
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.files = workdir / "files"
        for d in (self.log_dir, self.files):
            d.mkdir(parents=True, exist_ok=True)
        # nginx's static root: the peer's workers run as nobody, so the root and every directory
        # above it must be world-searchable, which a work directory under a private one is not.
        self.static_root = Path(tempfile.mkdtemp(prefix="bench-static-"))
        self.static_root.chmod(0o755)
        self.password = secrets.token_urlsafe(18)
        self.data_dir = workdir / "project-data"
        self.project = ProjectServer(
            name="project",
            data_dir=self.data_dir,
            port=free_port(),
            username=USER,
            password=self.password,
            log_dir=self.log_dir,
            extra_env=opts.project_env,
        )
        self.project_t = Target("project", self.project.port, (USER, self.password))
        self.robot_t: Target | None = None
        self.distribution = PeerDistribution(peers_dir=opts.peers_dir, port=free_port(), dir=workdir / "distribution")
        self.dist_t = Target("Distribution", self.distribution.port)
        self.static = PeerNginx(peers_dir=opts.peers_dir, port=free_port(), root=self.static_root)
        self.xaccel_web: GunicornWeb | None = None
        self.xaccel: NginxXAccel | None = None
        self.xaccel_t: Target | None = None
        self.moto: MotoServer | None = None
        self.s3_project: ProjectServer | None = None
        self.s3_t: Target | None = None

    # -- servers -------------------------------------------------------------------------------

    def needs(self, *metric_ids: str) -> bool:
        return any(m in self.opts.metrics for m in metric_ids)

    def stoppers(self) -> list[Callable[[], None]]:
        """Stop functions of every server that may have started."""
        out = []
        if self.xaccel is not None:
            out.append(self.xaccel.stop)
        if self.xaccel_web is not None:
            out.append(self.xaccel_web.stop)
        if self.s3_project is not None:
            out.append(self.s3_project.stop)
        if self.moto is not None:
            out.append(self.moto.stop)
        return out + [self.project.stop, self.distribution.stop, self._stop_static]

    def _servers(self) -> list[tuple[str, object]]:
        servers = [
            ("project", self.project),
            ("project web process behind nginx", self.xaccel_web),
            ("nginx (deploy/nginx.conf)", self.xaccel),
            ("project in S3 mode", self.s3_project),
            ("moto", self.moto),
            ("Distribution", self.distribution),
            ("nginx static", self.static),
        ]
        return [(name, server) for name, server in servers if server is not None]

    def revive(self) -> list[str]:
        """Restart any server that has died (and say which, with its log), so later metrics run."""
        notes = []
        for name, server in self._servers():
            if self._healthy(server) is False:
                tail = server.log_tail().strip().replace("\n", " | ")[-1500:]
                notes.append(f"the {name} server had stopped answering; restarted it. Its log ended: {tail}")
                log(notes[-1])
                server.stop()
                server.start()
        return notes

    @staticmethod
    def _healthy(server) -> bool | None:
        """None: never started; False: exited, or its process runs but nothing answers HTTP."""
        state = server.alive()
        if not state:
            return state
        path = "/" if isinstance(server, PeerNginx | MotoServer) else "/v2/"
        # Any answer will do; a busy server gets two slow chances.
        return any(http_status(server.port, path, timeout=10) is not None for _ in range(2))

    def _stop_static(self) -> None:
        self.static.stop()
        shutil.rmtree(self.static_root, ignore_errors=True)

    def start(self) -> None:
        """Start every server the chosen metrics need, independent ones side by side."""
        jobs = [self._start_project, self.distribution.start]
        if self.needs("1", "2", "3"):
            jobs.append(self.static.start)
        if self.needs("9"):
            jobs.append(self._start_s3)
        with ThreadPoolExecutor(len(jobs)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    def _start_project(self) -> None:
        log(f"starting the project on 127.0.0.1:{self.project.port} (DATA_DIR {self.data_dir})")
        self.project.start()
        made = self.project.shell(SETUP_SCRIPT.format(user=USER))
        self.robot_t = Target("project (robot)", self.project.port, (made["robot"], made["token"]))
        if self.needs("1", "2", "3"):
            # A second web process on the same data, answering blob GETs with X-Accel-Redirect.
            self.xaccel_web = GunicornWeb(
                name="project-xaccel",
                port=free_port(),
                env={**self.project.env, "X_ACCEL_REDIRECT_PREFIX": X_ACCEL_PREFIX},
                log_dir=self.log_dir,
            )
            self.xaccel_web.start()
            self.xaccel = NginxXAccel(
                port=free_port(),
                upstream_port=self.xaccel_web.port,
                storage_root=self.data_dir / "storage",
                runtime_dir=self.log_dir / "nginx-xaccel",
                template=REPO_ROOT / "deploy" / "nginx.conf",
            )
            self.xaccel.start()
            self.xaccel_t = Target("project behind nginx", self.xaccel.port, (USER, self.password))
            log(f"project behind nginx (deploy/nginx.conf, X-Accel-Redirect) on 127.0.0.1:{self.xaccel.port}")

    def _start_s3(self) -> None:
        self.moto = MotoServer(port=free_port(), log_dir=self.log_dir)
        self.moto.start()
        self.moto.create_bucket(S3_BUCKET)
        self.s3_project = ProjectServer(
            name="project-s3",
            data_dir=self.workdir / "project-s3-data",
            port=free_port(),
            username=USER,
            password=self.password,
            log_dir=self.log_dir,
            worker=False,
            extra_env={
                **self.opts.project_env,
                "STORAGE_BACKEND": "s3",
                "S3_BUCKET": S3_BUCKET,
                "S3_ENDPOINT_URL": self.moto.url,
                "S3_REGION": "us-east-1",
                "S3_ACCESS_KEY_ID": "x",
                "S3_SECRET_ACCESS_KEY": "x",
            },
        )
        self.s3_project.start()
        self.s3_t = Target("project (S3)", self.s3_project.port, (USER, self.password))
        log(f"project in S3 mode on 127.0.0.1:{self.s3_project.port}, moto on {self.moto.url}")

    # -- helpers -------------------------------------------------------------------------------

    def push_file(self, target: Target, repo: str, path: Path, digest: str, size: int) -> None:
        session = Session(target)
        try:
            with open(path, "rb") as f:
                session.push_blob(repo, f, digest, size, target.auth(push_scope(repo)))
        finally:
            session.close()

    def distribution_pid(self) -> int | None:
        try:
            return int((self.distribution.dir / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def alternate(
        self,
        metric: Metric,
        subjects: list[tuple[str, Callable[[int], dict[str, float]]]],
        *,
        prepare: Callable[[int], None] | None = None,
    ) -> None:
        """Warm-up rounds, then counted rounds; each round runs every subject once, in order.

        A subject returns named values; counted ones are kept as samples "<label> <name>".
        """
        rounds = self.opts.warmup + self.opts.runs
        for r in range(rounds):
            counted = r >= self.opts.warmup
            tag = f"run {r - self.opts.warmup + 1}/{self.opts.runs}" if counted else "warm-up"
            if prepare is not None:
                prepare(r)
            for label, fn in subjects:
                values = fn(r)
                shown = ", ".join(f"{k or 'value'} {v:.4g}" for k, v in values.items())
                log(f"[{metric.id}] {tag} {label}: {shown}")
                if counted:
                    for key, value in values.items():
                        metric.sample(f"{label} {key}".strip(), value)
        if self.profiler is not None:
            # One more round, not counted, of the project's subjects with py-spy attached.
            if prepare is not None:
                prepare(rounds)
            for label, fn in subjects:
                pid = self.server_pid(label)
                if pid is None:
                    continue
                with self.profiler.record(f"{metric.id}-{label}", pid) as path:
                    fn(rounds)
                log(f"[{metric.id}] profiled {label}: {path.with_suffix('.top.txt')}")

    def server_pid(self, label: str) -> int | None:
        """The server process a subject measures, when it is the project's (None for peers)."""
        if label in PEER_LABELS:
            return None
        if label == "project behind nginx":
            server = self.xaccel_web
        elif label == "project + S3":
            server = self.s3_project
        else:
            server = self.project
        return server.proc.pid if server is not None and server.proc is not None else None


class RssSampler:
    """Samples the RSS of some processes in a thread; ``growth`` is the largest rise of one."""

    def __init__(self, pids: list[int], interval: float = 0.02):
        self.pids = pids
        self.interval = interval
        self.base = {pid: rss_bytes(pid) or 0 for pid in pids}
        self.peak = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                value = rss_bytes(pid)
                if value is not None and value > self.peak[pid]:
                    self.peak[pid] = value
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return max((self.peak[p] - self.base[p] for p in self.pids), default=0)
