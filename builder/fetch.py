"""Getting a job's source: the package over HTTP(S) from the server, or a git commit.

Both are blocking and run in a thread (see builder.job); both watch a ``threading.Event`` so a
cancelled job stops downloading.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from builder.errors import GIT, PACKAGE, JobError
from builder.processes import Processes

CHUNK = 256 * 1024
DOWNLOAD_TIMEOUT_SECONDS = 60


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """The TLS context for wss:// and https://: the system's CAs, or ``ca_file`` when given
    (a server with a self-signed certificate)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # The job token must never follow a redirect to another place: the package URL is the server's.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"unexpected redirect to {newurl}", headers, fp)


def download(
    url: str,
    dest: Path,
    *,
    token: str,
    max_bytes: int,
    ca_file: str | None = None,
    cancelled: threading.Event | None = None,
) -> int:
    """Stream ``url`` into ``dest`` with the job token; at most ``max_bytes``. Returns the size."""
    if not url.startswith(("http://", "https://")):
        raise JobError(PACKAGE, f"The build package URL is not HTTP(S): {url!r}.")
    handlers = [_NoRedirect()]
    if url.startswith("https://"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context(ca_file)))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "*/*"})
    size = 0
    try:
        with opener.open(request, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise JobError(PACKAGE, f"The build package is larger than {max_bytes} bytes.")
            with open(dest, "wb") as out:
                while True:
                    if cancelled is not None and cancelled.is_set():
                        raise JobError(PACKAGE, "cancelled")
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise JobError(PACKAGE, f"The build package is larger than {max_bytes} bytes.")
                    out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise JobError(PACKAGE, f"Downloading the build package failed: HTTP {exc.code} {exc.reason}.") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise JobError(PACKAGE, f"Downloading the build package failed: {exc}.") from None
    return size


async def git_checkout(
    url: str,
    sha: str,
    dest: Path,
    *,
    private_key: str | None,
    work_dir: Path,
    processes: Processes,
    cancelled: threading.Event | None = None,
) -> None:
    """Clone ``url`` into ``dest`` and check out exactly ``sha`` (detached).

    The SSH key goes to a 0600 file in ``work_dir`` used by this clone only: no agent, no user
    configuration, and unknown host keys accepted on first use into a known_hosts of the job's own.
    """
    if not sha or not all(c in "0123456789abcdefABCDEF" for c in sha):
        raise JobError(GIT, f"The git commit {sha!r} is not a commit id.")
    if url.startswith("-"):
        raise JobError(GIT, f"The git URL {url!r} is not valid.")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work_dir),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LANG": "C",
    }
    key_path = None
    if private_key:
        fd, key_path = tempfile.mkstemp(prefix="key-", dir=work_dir)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(private_key if private_key.endswith("\n") else private_key + "\n")
        known_hosts = Path(work_dir, "known_hosts")
        env["GIT_SSH_COMMAND"] = (
            f"ssh -F /dev/null -i {key_path} -o IdentitiesOnly=yes -o IdentityAgent=none "
            f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known_hosts} -o BatchMode=yes"
        )
    else:
        env["GIT_SSH_COMMAND"] = "ssh -F /dev/null -o IdentityAgent=none -o BatchMode=yes"
    # Only network transports: a job must not read repositories on the worker's own disk, and
    # the "ext" transport runs commands.
    protocol = ["-c", "protocol.allow=never"] + [
        arg for name in ("https", "http", "ssh", "git") for arg in ("-c", f"protocol.{name}.allow=always")
    ]
    steps = [
        ("clone", ["git", *protocol, "clone", "--quiet", "--no-checkout", "--", url, str(dest)]),
        ("checkout", ["git", *protocol, "-C", str(dest), "checkout", "--quiet", "--detach", sha]),
    ]
    try:
        for name, argv in steps:
            if cancelled is not None and cancelled.is_set():
                raise JobError(GIT, "cancelled")
            rc, lines = await processes.run(argv, env=env)
            if processes.killed:
                raise JobError(GIT, "cancelled")
            if rc != 0:
                detail = lines[-1] if lines else f"exit status {rc}"
                # git's messages name the URL and the commit, never the key.
                raise JobError(GIT, f"git {name} failed: {detail}")
    finally:
        if key_path:
            os.unlink(key_path)
