"""Custom git build triggers end to end (guide chapter 3), with real software only.

A git repository is served over SSH by an OpenSSH ``sshd`` this module starts on 127.0.0.1 (its
own host key, config and ``authorized_keys``; logins go through ``git-shell``, as on a plain git
server). A custom git trigger is created and activated through Quay's trigger API on a live
server with builds switched on; its generated public key (from the API's View Credentials) is
authorized on the git server. The README's ``post-receive`` hook is installed in the bare
repository unchanged except for the webhook URL, so a ``git push`` over SSH runs it and it calls
the webhook. A build worker (``python -m builder``) then clones over SSH with the trigger's key,
checks out the pushed commit and builds with buildah; skopeo reads the image back.

sshd, ssh, ssh-keygen and git are required: without them the tests fail, they do not skip (CI
installs Debian's openssh-server, openssh-client and git).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.builds_support import (
    SECRET,
    Api,
    BuildServer,
    build_rows,
    build_setup,
    phases_in_log,
    pulled_files,
    wait_registered,
    worker_pool,
)
from tests.e2e.conftest import BASE_DIR, PASSWORD, ClientError, _free_port, live_server, run

pytestmark = pytest.mark.e2e

REPO = "acme/app"
SSHD_START_SECONDS = 30
# Branches the trigger builds: main (the default branch) and release branches.
BRANCH_REGEX = r"heads/(main|release-.+)"
AUTHOR = ("Ada Author", "ada@example.com")
COMMITTER = ("Carl Committer", "carl@example.com")
HOOK_URL_PLACEHOLDER = "https://$token:SECRET@quay.example.com/webhooks/push/trigger/UUID"


def required_tools() -> dict[str, str]:
    """The OpenSSH and git programs, by absolute path (sshd must be started by one)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
    tools = {name: shutil.which(name, path=search) for name in ("sshd", "ssh", "ssh-keygen", "git", "git-shell")}
    missing = sorted(name for name, path in tools.items() if path is None)
    if missing:
        pytest.fail(
            f"The custom git trigger tests need {', '.join(missing)}: install Debian's openssh-server, "
            "openssh-client and git (.ci/run does)"
        )
    return tools


def documented_hook() -> str:
    """The ``post-receive`` script of triggers/README.md, as a reader would copy it."""
    readme = (BASE_DIR / "triggers" / "README.md").read_text()
    section = readme.split("### A `post-receive` hook", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "triggers/README.md has no post-receive script"
    return match.group(1)


# ---------------------------------------------------------------------------------------------
# The git server


class SshGitServer:
    """OpenSSH's sshd on a free port of 127.0.0.1, serving the bare repositories under ``root``.

    Only public keys log in, as the user running the tests (root in CI), and every login runs
    ``git-shell``: the keys in ``authorized_keys`` can fetch and push, nothing else.
    """

    def __init__(self, root: Path, tools: dict[str, str]):
        self.root = root
        self.tools = tools
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = _free_port()
        self.authorized_keys = root / "authorized_keys"
        self.authorized_keys.write_text("")
        self.log_path = root / "sshd.log"
        host_key = root / "ssh_host_ed25519_key"
        run([tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-C", "e2e-host", "-f", str(host_key)])
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress 127.0.0.1:{self.port}",
                    f"HostKey {host_key}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "AuthenticationMethods publickey",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    # The files live in pytest's temp directories, which sshd would find too open.
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {self.user}",
                    f'ForceCommand {tools["git-shell"]} -c "$SSH_ORIGINAL_COMMAND"',
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "PermitTTY no",
                    "PrintMotd no",
                    # VERBOSE logs the fingerprint of each key that logs in.
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            # sshd's privilege separation directory (compiled in); made at boot on a real host.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [tools["sshd"], "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SSHD_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                    if conn.recv(64).startswith(b"SSH-2.0-"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"sshd did not answer within {SSHD_START_SECONDS}s:\n{self.log()}")

    def authorize(self, public_key: str) -> None:
        with open(self.authorized_keys, "a") as f:
            f.write(public_key.strip() + "\n")

    def url(self, repository: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repository}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def accepted_fingerprints(self) -> list[str]:
        # "Accepted publickey for root from 127.0.0.1 port 4242 ssh2: ED25519 SHA256:..."
        return re.findall(r"Accepted publickey for \S+ from 127\.0\.0\.1 port \d+ ssh2: \S+ (SHA256:\S+)", self.log())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # its session's children (open logins)
        except ProcessLookupError:
            pass
        self.process.wait()


def fingerprint(tools: dict[str, str], public_key: str, directory: Path) -> str:
    path = directory / f"key-{time.time_ns()}.pub"
    path.write_text(public_key.strip() + "\n")
    return run([tools["ssh-keygen"], "-l", "-E", "sha256", "-f", str(path)]).stdout.split()[1]


class Developer:
    """Someone with a working copy, pushing to the git server over SSH with their own key."""

    def __init__(self, root: Path, tools: dict[str, str], git_server: SshGitServer):
        self.root = root
        self.tools = tools
        self.git_server = git_server
        key = root / "id_ed25519"
        run([tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-C", "developer", "-f", str(key)])
        git_server.authorize((root / "id_ed25519.pub").read_text())
        self.public_key = (root / "id_ed25519.pub").read_text()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "LANG": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": AUTHOR[0],
            "GIT_AUTHOR_EMAIL": AUTHOR[1],
            "GIT_COMMITTER_NAME": COMMITTER[0],
            "GIT_COMMITTER_EMAIL": COMMITTER[1],
            "GIT_SSH_COMMAND": (
                f"{tools['ssh']} -F /dev/null -i {key} -o IdentitiesOnly=yes -o IdentityAgent=none "
                f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={root / 'known_hosts'} -o BatchMode=yes"
            ),
        }

    def git(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        try:
            return run([self.tools["git"], *args], env=self.env, cwd=cwd)
        except ClientError as exc:
            # A refused login shows only as "Permission denied" here; sshd's log says why.
            raise ClientError(f"{exc}\nsshd log:\n{self.git_server.log()}") from None

    def clone(self, url: str, name: str) -> Path:
        target = self.root / name
        self.git("clone", "--quiet", url, str(target))
        return target

    def on_main(self, work: Path) -> None:
        """Work on main: the pushed one, or a new one when the repository is still empty."""
        if (
            run(
                [self.tools["git"], "rev-parse", "--verify", "--quiet", "origin/main"],
                env=self.env,
                cwd=work,
                check=False,
            ).returncode
            == 0
        ):
            self.git("checkout", "--quiet", "-B", "main", "origin/main", cwd=work)
        else:
            self.git("symbolic-ref", "HEAD", "refs/heads/main", cwd=work)

    def commit(self, work: Path, files: dict[str, str], message: str) -> str:
        for name, content in files.items():
            path = work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            self.git("add", name, cwd=work)
        self.git("commit", "--quiet", "-m", message, cwd=work)
        return self.git("rev-parse", "HEAD", cwd=work).stdout.strip()

    def push(self, work: Path, *refspecs: str) -> dict[str, dict]:
        """Push over SSH; returns the webhook's answer per ref, as the hook printed them."""
        result = self.git("push", "--porcelain", "origin", *refspecs, cwd=work)
        output = result.stdout + result.stderr
        answers = {}
        for ref, status, body in re.findall(r"remote: quay: (\S+): (?:(\d{3}) )?(\{.*\})", output):
            answer = json.loads(body)
            answer["http_status"] = int(status) if status else 200
            answers[ref] = answer
        assert answers, f"the post-receive hook called no webhook:\n{output}"
        return answers


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def tools():
    return required_tools()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tools):
    yield from live_server(
        tmp_path_factory,
        "triggers",
        BuildServer,
        FEATURE_BUILD_SUPPORT="1",
        BUILDER_REGISTRATION_SECRET=SECRET,
    )


@pytest.fixture(scope="module")
def api(server, clients, tmp_path_factory) -> Api:
    """Alice's API, and busybox pushed as the private base image ``acme/base``."""
    return build_setup(server, clients, tmp_path_factory)


@pytest.fixture(scope="module")
def git_server(tmp_path_factory, tools):
    git_server = SshGitServer(tmp_path_factory.mktemp("sshd"), tools)
    yield git_server
    git_server.stop()


@pytest.fixture(scope="module")
def developer(tmp_path_factory, tools, git_server) -> Developer:
    return Developer(tmp_path_factory.mktemp("developer"), tools, git_server)


@pytest.fixture(scope="module")
def trigger(server, api, tools, git_server, tmp_path_factory) -> dict:
    """A bare repository on the git server, with a custom git trigger of ``acme/app`` set up the
    way an admin would: create, activate (pulling base images as acme+ci), authorize the key View
    Credentials shows, and install the README's hook with the webhook URL it shows."""
    bare = tmp_path_factory.mktemp("repos") / "app.git"
    run([tools["git"], "init", "--quiet", "--bare", "--initial-branch=main", str(bare)])
    build_source = git_server.url(bare)

    created = api.request("POST", f"/repository/{REPO}/trigger/", json={"service": "custom-git"})
    assert created.status_code == 201, created.text
    assert created.json()["is_active"] is False
    trigger_id = created.json()["id"]
    activated = api.request(
        "POST",
        f"/repository/{REPO}/trigger/{trigger_id}/activate",
        json={"config": {"build_source": build_source, "branchtag_regex": BRANCH_REGEX}, "pull_robot": "acme+ci"},
    )
    assert activated.status_code == 200, activated.text
    view = api.request("GET", f"/repository/{REPO}/trigger/{trigger_id}").json()
    assert view["is_active"] and view["build_source"] == build_source
    credentials = {item["name"]: item["value"] for item in view["config"]["credentials"]}
    public_key = credentials["SSH Public Key"]
    webhook_url = credentials["Webhook Endpoint URL"]
    assert public_key.startswith("ssh-ed25519 ")
    assert webhook_url.startswith("http://$token:") and webhook_url.endswith(
        f"@{server.host}/webhooks/push/trigger/{trigger_id}"
    )
    git_server.authorize(public_key)

    script = documented_hook()
    assert script.count(HOOK_URL_PLACEHOLDER) == 1
    hook = bare / "hooks" / "post-receive"
    # README: "put the webhook URL from View Credentials in QUAY_TRIGGER_URL (or in the script)";
    # sshd gives a login no environment of ours, so in the script.
    hook.write_text(script.replace(HOOK_URL_PLACEHOLDER, webhook_url))
    hook.chmod(0o755)
    return {
        "id": trigger_id,
        "build_source": build_source,
        "public_key": public_key,
        "fingerprint": fingerprint(tools, public_key, bare.parent),
    }


@pytest.fixture(scope="module")
def worker(server):
    pool = worker_pool(server)
    start = next(pool)
    start("git-builder")
    wait_registered(server, "git-builder")
    yield
    next(pool, None)  # stops the worker; fails on a traceback in its log


def trigger_build_ids(api: Api, trigger_id: str) -> list[str]:
    response = api.request("GET", f"/repository/{REPO}/trigger/{trigger_id}/builds", params={"limit": 100})
    assert response.status_code == 200, response.text
    return [build["id"] for build in response.json()["builds"]]


def dockerfile(server) -> str:
    return (
        f"FROM {server.host}/acme/base:latest\n"
        "COPY message.txt /message.txt\n"
        # The checkout is detached at the commit: .git/HEAD holds its SHA.
        "COPY .git/HEAD /checked-out-head\n"
        "RUN echo built-by-run > /built.txt && cat /message.txt\n"
    )


# ---------------------------------------------------------------------------------------------


def test_a_push_builds_each_branch_over_ssh_and_the_images_land_in_the_registry(
    server, api, clients, git_server, developer, trigger, worker, tmp_path
):
    work = developer.clone(trigger["build_source"], "work-build")
    developer.on_main(work)
    main_sha = developer.commit(
        work, {"Dockerfile": dockerfile(server), "message.txt": "from main\n"}, "Build me\n\nA longer body."
    )
    developer.git("checkout", "--quiet", "-b", "release-1", cwd=work)
    release_sha = developer.commit(work, {"message.txt": "from release-1\n"}, "Release 1")

    # One push, two refs: the hook calls the webhook once per ref.
    answers = developer.push(work, "main", "release-1")
    assert set(answers) == {"refs/heads/main", "refs/heads/release-1"}, answers
    for answer in answers.values():
        assert answer["http_status"] == 200 and answer["skipped"] is False, answers
    main_id = answers["refs/heads/main"]["build_id"]
    release_id = answers["refs/heads/release-1"]["build_id"]
    assert set(trigger_build_ids(api, trigger["id"])) >= {main_id, release_id}

    queued = api.build(REPO, main_id)
    assert queued["tags"] == ["main", "latest"]  # the branch, and latest for the default branch
    assert api.build(REPO, release_id)["tags"] == ["release-1"]

    for build_id, sha, message in ((main_id, main_sha, "from main\n"), (release_id, release_sha, "from release-1\n")):
        done = api.wait(REPO, build_id, "complete", "error", "internalerror")
        entries = api.logs(REPO, build_id)
        assert done["phase"] == "complete", entries
        assert {"unpacking", "building", "pushing", "complete"} <= set(phases_in_log(entries))
        assert any(f"Checked out {sha}" in entry["message"] for entry in entries), entries
        tag = done["tags"][0]
        (tmp_path / tag).mkdir()
        files = pulled_files(clients, server, f"{server.host}/{REPO}:{tag}", tmp_path / tag)
        assert files["checked-out-head"] == f"{sha}\n".encode()
        assert files["message.txt"] == message.encode()
        assert files["built.txt"] == b"built-by-run\n"  # the RUN step ran
        assert "bin/busybox" in files  # on the private base image, pulled as acme+ci

    # The worker logged in to the git server with the trigger's key (the developer used theirs).
    assert trigger["fingerprint"] in git_server.accepted_fingerprints(), git_server.log()

    # Both tags of the main build name its one image.
    row = build_rows(server, [main_id])[main_id]
    digests = set()
    for tag in ("main", "latest"):
        inspected = clients.skopeo(
            "inspect", "--tls-verify=false", "--creds", f"alice:{PASSWORD}", f"docker://{server.host}/{REPO}:{tag}"
        )
        digests.add(json.loads(inspected.stdout)["Digest"])
    assert len(digests) == 1 and digests <= set(row["digests"]), (digests, row)

    # The build view carries what the hook sent, and names the trigger.
    view = api.build(REPO, main_id)
    assert view["trigger"]["id"] == trigger["id"] and view["trigger"]["service"] == "custom-git"
    metadata = view["trigger_metadata"]
    assert metadata["commit"] == main_sha
    assert metadata["ref"] == "refs/heads/main"
    assert metadata["default_branch"] == "main"
    assert metadata["git_url"] == trigger["build_source"]
    info = metadata["commit_info"]
    assert info["message"] == "Build me\n\nA longer body."
    assert info["author"]["username"] == AUTHOR[0]
    assert info["committer"]["username"] == COMMITTER[0]
    commit_date = developer.git("log", "-1", "--format=%cI", main_sha, cwd=work).stdout.strip()
    assert info["date"] == commit_date
    assert view["manual_user"] is None  # a push, not a person, started it


def test_skipped_commits_and_filtered_branches_queue_nothing(api, server, developer, trigger):
    work = developer.clone(trigger["build_source"], "work-skip")
    developer.on_main(work)
    before = trigger_build_ids(api, trigger["id"])

    developer.commit(work, {"Dockerfile": dockerfile(server), "message.txt": "skip me\n"}, "Docs only [skip build]")
    answers = developer.push(work, "main")
    assert answers["refs/heads/main"]["http_status"] == 200
    assert answers["refs/heads/main"]["skipped"] is True and answers["refs/heads/main"]["build_id"] is None

    developer.commit(work, {"message.txt": "also skipped\n"}, "[build skip] in the other order")
    assert developer.push(work, "main")["refs/heads/main"]["skipped"] is True

    # A branch outside heads/(main|release-.+).
    developer.git("checkout", "--quiet", "-b", "feature/login", cwd=work)
    developer.commit(work, {"message.txt": "feature\n"}, "A feature")
    answers = developer.push(work, "feature/login")
    assert answers == {
        "refs/heads/feature/login": {"status": 200, "skipped": True, "build_id": None, "http_status": 200}
    }

    assert trigger_build_ids(api, trigger["id"]) == before
    listed = api.request("GET", f"/repository/{REPO}/build/", params={"limit": 100})
    assert listed.status_code == 200
    assert {build["id"] for build in listed.json()["builds"]} == set(before)
