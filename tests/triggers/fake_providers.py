"""Local stand-ins for GitHub, GitLab and Bitbucket: real HTTP servers on 127.0.0.1 speaking the
parts of each provider's documented REST API that triggers call (OAuth authorize + token
exchange, the user, organizations/groups/workspaces, repositories, branches, tags, commits,
deploy keys, webhooks).

Each server checks what a real provider checks (client credentials at the token exchange, the
code, the bearer token on every API call) and records what it was asked: the deploy keys and
hooks added and removed, with the hook's URL and secret, so a test can deliver a push signed
exactly as the provider would sign it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import re
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

PAYLOADS = Path(__file__).parent / "payloads"

# The commits the fake repositories hold (and the recorded payloads name).
MAIN_SHA = "7d4b2c9e1f0a3b5c6d7e8f90a1b2c3d4e5f60718"
FEATURE_SHA = "2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4939"
TAG_SHA = "c0ffee1234567890abcdef1234567890abcdef12"


DEFAULT_FILES = {
    "Dockerfile": "# The widget\nFROM quay.example.com/acme/base:1.0 AS build\nRUN make\n",
    "web/Dockerfile": "FROM docker.io/library/nginx:1.27\n",
    "web/prod.Dockerfile": "FROM quay.example.com/acme/base@sha256:" + "ab" * 32 + "\n",
    "docs/README.md": "# Widget docs\n",
}


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text())


class Reply(Exception):
    """Raised by a route to answer with a status and a JSON body (or a redirect)."""

    def __init__(self, status: int, body=None, headers: dict | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


class FakeProvider:
    """One provider on a local port: ``routes`` maps (method, regex on the raw path) to handlers."""

    service = ""
    token_ttl: int | None = None

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.client_id = f"{self.service}-client-" + secrets.token_hex(4)
        self.client_secret = secrets.token_hex(16)
        self.callback_url = ""  # the callback registered with the OAuth application
        self.codes: dict[str, str] = {}
        self.tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.deploy_keys: dict[str, dict] = {}
        self.hooks: dict[str, dict] = {}
        self.removed_keys: list[str] = []
        self.removed_hooks: list[str] = []
        # The files on the default branch ("main") of every repository the fake knows: the
        # analyze and subdir verbs read them. Empty: a repository without commits.
        self.files: dict[str, str] = dict(DEFAULT_FILES)
        # (method, path regex) -> status: answer this instead (to test failures).
        self.failures: dict[tuple[str, str], int] = {}
        self._ids = 1000
        self.routes: list[tuple[str, re.Pattern, object]] = []
        self.setup_routes()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, method: str, pattern: str, handler) -> None:
        self.routes.append((method, re.compile(pattern + r"$"), handler))

    def next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    def dispatch(self, method: str, raw_path: str, headers, body: bytes):
        parts = urlsplit(raw_path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        record = {"method": method, "path": parts.path, "query": query, "headers": dict(headers), "body": body}
        with self.lock:
            self.requests.append(record)
        for (fail_method, fail_path), status in self.failures.items():
            if fail_method == method and re.fullmatch(fail_path, parts.path):
                raise Reply(status, {"message": "Injected failure"})
        for route_method, pattern, handler in self.routes:
            match = pattern.match(parts.path)
            if route_method == method and match:
                return handler(request=record, **match.groupdict())
        raise Reply(404, {"message": "Not Found"})

    def json_body(self, request) -> dict:
        try:
            return json.loads(request["body"] or b"{}")
        except ValueError:
            raise Reply(400, {"message": "Problems parsing JSON"}) from None

    def form_body(self, request) -> dict:
        return {key: values[-1] for key, values in parse_qs(request["body"].decode()).items()}

    def bearer(self, request) -> str:
        header = request["headers"].get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            raise Reply(401, {"message": "Bad credentials"})
        return token

    def calls(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]

    # -- OAuth ------------------------------------------------------------------------------

    def consent(self, authorize_url: str) -> str:
        """What the user's browser does at the provider: GET the authorize URL (the user
        approves) and return the Location the provider sends it back to."""
        parts = urlsplit(authorize_url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 302, response.status
        return response.getheader("Location")

    def authorize(self, request, **_):
        query = request["query"]
        if query.get("client_id") != self.client_id:
            raise Reply(400, {"error": "invalid_client"})
        code = secrets.token_hex(10)
        with self.lock:
            self.codes[code] = query.get("redirect_uri") or self.callback_url
        target = query.get("redirect_uri") or self.callback_url
        location = f"{target}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        raise Reply(302, None, {"Location": location})

    def grant(self, *, code: str | None = None, redirect_uri: str | None = None, refresh: str | None = None) -> dict:
        with self.lock:
            if refresh is not None:
                if refresh not in self.refresh_tokens:
                    raise Reply(400, {"error": "invalid_grant", "error_description": "The refresh token is invalid"})
                self.refresh_tokens.discard(refresh)
            else:
                expected = self.codes.pop(code or "", None)
                if expected is None or (redirect_uri is not None and redirect_uri != expected):
                    raise Reply(400, {"error": "invalid_grant", "error_description": "The code is invalid"})
            token = "tok-" + secrets.token_hex(12)
            self.tokens.add(token)
            answer = {"access_token": token, "token_type": "bearer"}
            if self.token_ttl is not None:
                refresh_token = "ref-" + secrets.token_hex(12)
                self.refresh_tokens.add(refresh_token)
                answer.update(expires_in=self.token_ttl, refresh_token=refresh_token)
            return answer

    def revoke_all(self) -> None:
        with self.lock:
            self.tokens.clear()

    # -- deliveries -------------------------------------------------------------------------

    def only_hook(self) -> dict:
        assert len(self.hooks) == 1, self.hooks
        return next(iter(self.hooks.values()))

    def sign(self, secret: str, body: bytes) -> str:
        return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    def setup_routes(self) -> None:
        raise NotImplementedError

    # -- the default branch's files ---------------------------------------------------------

    def directories(self) -> set[str]:
        found = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            found |= {"/".join(parts[: i + 1]) for i in range(len(parts))}
        return found

    def encoded(self, path: str) -> dict:
        """A file as the contents APIs of GitHub and GitLab send it: base64 in lines of 60."""
        data = base64.b64encode(self.files[path].encode()).decode()
        return {
            "encoding": "base64",
            "content": "\n".join(data[i : i + 60] for i in range(0, len(data), 60)),
            "size": len(self.files[path].encode()),
            "sha": hashlib.sha1(self.files[path].encode()).hexdigest(),
        }


def _handler_for(fake: FakeProvider):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _serve(self, method: str):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer, extra = 200, None, {}
            try:
                answer = fake.dispatch(method, self.path, self.headers, body)
            except Reply as reply:
                status, answer, extra = reply.status, reply.body, reply.headers
            if isinstance(answer, tuple):
                status, answer = answer
            if isinstance(answer, bytes):
                data, content_type = answer, "application/octet-stream"
            else:
                data = b"" if answer is None else json.dumps(answer).encode()
                content_type = "application/json; charset=utf-8"
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if data:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_DELETE(self):
            self._serve("DELETE")

    return Handler


# ---------------------------------------------------------------------------------------------
# GitHub (Enterprise layout: the API under /api/v3 of the same host)


class FakeGitHub(FakeProvider):
    service = "github"
    login = "octo-alice"

    def repo(self, full_name: str, *, admin: bool = True) -> dict:
        owner, name = full_name.split("/")
        return {
            "id": abs(hash(full_name)) % 10**8,
            "node_id": "R_kgDOAbCdEf",
            "name": name,
            "full_name": full_name,
            "private": True,
            "owner": {"login": owner, "id": 4242, "type": "Organization"},
            "html_url": f"{self.url}/{full_name}",
            "description": f"The {name} service",
            "fork": False,
            "ssh_url": f"git@127.0.0.1:{full_name}.git",
            "clone_url": f"{self.url}/{full_name}.git",
            "pushed_at": "2026-11-30T09:59:00Z",
            "default_branch": "main",
            "permissions": {"admin": admin, "maintain": admin, "push": True, "triage": True, "pull": True},
        }

    KNOWN = {"acme-corp/widget", "acme-corp/docs", "octo-alice/dotfiles"}

    def setup_routes(self) -> None:
        api = "/api/v3"
        repo = api + r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
        self.route("GET", "/login/oauth/authorize", self.authorize)
        self.route("POST", "/login/oauth/access_token", self.access_token)
        self.route("GET", api + "/user", self.user)
        self.route("GET", api + "/user/orgs", self.orgs)
        self.route(
            "GET", api + "/user/repos", lambda request: (self.bearer(request), [self.repo("octo-alice/dotfiles")])[1]
        )
        self.route("GET", api + r"/orgs/(?P<org>[^/]+)/repos", self.org_repos)
        self.route("GET", repo, self.repository)
        self.route("GET", repo + "/branches", self.branches)
        self.route("GET", repo + "/tags", self.tags)
        self.route("GET", repo + r"/commits/(?P<ref>.+)", self.commit)
        self.route("GET", repo + r"/contents/(?P<path>.+)", self.contents)
        self.route("GET", repo + r"/git/trees/(?P<ref>.+)", self.tree)
        self.route("POST", repo + "/keys", self.key_add)
        self.route("DELETE", repo + r"/keys/(?P<item>[^/]+)", self.key_remove)
        self.route("POST", repo + "/hooks", self.hook_add)
        self.route("DELETE", repo + r"/hooks/(?P<item>[^/]+)", self.hook_remove)

    def access_token(self, request, **_):
        form = self.form_body(request)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return {
                "error": "incorrect_client_credentials",
                "error_description": "The client_id and/or client_secret passed are incorrect.",
            }
        if request["headers"].get("Accept") != "application/json":
            raise Reply(406, None)
        try:
            return self.grant(code=form.get("code"), redirect_uri=form.get("redirect_uri"))
        except Reply:
            # GitHub answers a bad code with 200 and an error object.
            return {"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}

    def user(self, request, **_):
        self.bearer(request)
        return {
            "login": self.login,
            "id": 5150,
            "avatar_url": "https://avatars.githubusercontent.com/u/5150?v=4",
            "html_url": f"{self.url}/{self.login}",
            "name": "Alice Octo",
            "plan": {"name": "pro", "private_repos": 9999},
        }

    def orgs(self, request, **_):
        self.bearer(request)
        return [
            {
                "login": "acme-corp",
                "id": 4242,
                "url": f"{self.url}/api/v3/orgs/acme-corp",
                "avatar_url": "https://avatars.githubusercontent.com/u/4242?v=4",
                "description": "Acme",
            },
        ]

    def org_repos(self, request, org, **_):
        self.bearer(request)
        if org != "acme-corp":
            raise Reply(404, {"message": "Not Found"})
        return [self.repo("acme-corp/widget"), self.repo("acme-corp/docs", admin=False)]

    def _known(self, owner, name) -> str:
        full = f"{owner}/{name}"
        if full not in self.KNOWN:
            raise Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        return full

    def repository(self, request, owner, name, **_):
        self.bearer(request)
        return self.repo(self._known(owner, name))

    def branches(self, request, owner, name, **_):
        self.bearer(request)
        self._known(owner, name)
        return [
            {"name": "feature/login", "commit": {"sha": FEATURE_SHA}, "protected": False},
            {"name": "main", "commit": {"sha": MAIN_SHA}, "protected": True},
        ]

    def tags(self, request, owner, name, **_):
        self.bearer(request)
        self._known(owner, name)
        return [{"name": "v1.0.0", "commit": {"sha": TAG_SHA}, "zipball_url": "", "tarball_url": ""}]

    def commit(self, request, owner, name, ref, **_):
        self.bearer(request)
        full = self._known(owner, name)
        sha = {"heads/main": MAIN_SHA, "heads/feature/login": FEATURE_SHA, "tags/v1.0.0": TAG_SHA}.get(ref, ref)
        if sha not in (MAIN_SHA, FEATURE_SHA, TAG_SHA):
            raise Reply(422, {"message": f"No commit found for SHA: {ref}"})
        return {
            "sha": sha,
            "html_url": f"{self.url}/{full}/commit/{sha}",
            "commit": {
                "author": {"name": "Alice Octo", "email": "alice@example.com", "date": "2026-11-30T09:58:00Z"},
                "committer": {"name": "GitHub", "email": "noreply@github.com", "date": "2026-11-30T09:59:00Z"},
                "message": "Release the widget",
            },
            "author": {
                "login": "octo-alice",
                "avatar_url": "https://avatars.githubusercontent.com/u/5150?v=4",
                "html_url": f"{self.url}/octo-alice",
            },
            "committer": {
                "login": "web-flow",
                "avatar_url": "https://avatars.githubusercontent.com/u/19864447?v=4",
                "html_url": f"{self.url}/web-flow",
            },
        }

    def contents(self, request, owner, name, path, **_):
        """GET /repos/{owner}/{repo}/contents/{path}?ref=: a file (base64), or a directory's
        entries as a list."""
        self.bearer(request)
        full = self._known(owner, name)
        if request["query"].get("ref", "main") != "main" or not self.files:
            raise Reply(404, {"message": "No commit found for the ref"})
        if path in self.files:
            return {
                "type": "file",
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "url": f"{self.url}/api/v3/repos/{full}/contents/{path}?ref=main",
                **self.encoded(path),
            }
        if path in self.directories():
            return [
                {"type": "file", "name": item[len(path) + 1 :], "path": item}
                for item in sorted(self.files)
                if item.startswith(path + "/") and "/" not in item[len(path) + 1 :]
            ]
        raise Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def tree(self, request, owner, name, ref, **_):
        """GET /repos/{owner}/{repo}/git/trees/{ref}?recursive=1 (409 for an empty repository)."""
        self.bearer(request)
        self._known(owner, name)
        if not self.files:
            raise Reply(409, {"message": "Git Repository is empty."})
        if ref != "main":
            raise Reply(404, {"message": "Not Found"})
        nested = request["query"].get("recursive") in ("1", "true")
        rows = [{"path": d, "mode": "040000", "type": "tree", "sha": "d" * 40} for d in sorted(self.directories())]
        rows += [
            {"path": p, "mode": "100644", "type": "blob", "sha": self.encoded(p)["sha"], "size": 10}
            for p in sorted(self.files)
        ]
        if not nested:
            rows = [row for row in rows if "/" not in row["path"]]
        return {"sha": MAIN_SHA, "url": "", "tree": rows, "truncated": False}

    def key_add(self, request, owner, name, **_):
        self.bearer(request)
        full = self._known(owner, name)
        body = self.json_body(request)
        if not str(body.get("key", "")).startswith("ssh-"):
            raise Reply(422, {"message": "Validation Failed", "errors": [{"message": "key is invalid"}]})
        item = str(self.next_id())
        with self.lock:
            self.deploy_keys[item] = {"repo": full, **body}
        return 201, {
            "id": int(item),
            "key": body["key"],
            "title": body.get("title"),
            "read_only": body.get("read_only"),
            "verified": True,
        }

    def key_remove(self, request, owner, name, item, **_):
        self.bearer(request)
        with self.lock:
            if self.deploy_keys.pop(item, None) is None:
                raise Reply(404, {"message": "Not Found"})
            self.removed_keys.append(item)
        return 204, None

    def hook_add(self, request, owner, name, **_):
        self.bearer(request)
        full = self._known(owner, name)
        body = self.json_body(request)
        item = str(self.next_id())
        with self.lock:
            self.hooks[item] = {"repo": full, **body}
        config = {k: v for k, v in body.get("config", {}).items() if k != "secret"}
        return 201, {
            "type": "Repository",
            "id": int(item),
            "name": "web",
            "active": True,
            "events": body.get("events"),
            "config": {**config, "secret": "********"},
        }

    def hook_remove(self, request, owner, name, item, **_):
        self.bearer(request)
        with self.lock:
            if self.hooks.pop(item, None) is None:
                raise Reply(404, {"message": "Not Found"})
            self.removed_hooks.append(item)
        return 204, None

    def deliver(self, client, event: str, body: dict | bytes, *, delivery: str | None = None, signature=None):
        """POST a delivery to the hook's URL as GitHub does (signed with the hook's secret)."""
        hook = self.only_hook()
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {
            "HTTP_X_GITHUB_EVENT": event,
            "HTTP_X_GITHUB_DELIVERY": delivery or str(uuid.uuid4()),
            "HTTP_X_GITHUB_HOOK_ID": "1000",
            "HTTP_USER_AGENT": "GitHub-Hookshot/7d3e2a1",
        }
        secret = hook["config"]["secret"]
        if signature is not False:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature or self.sign(secret, raw)
        path = urlsplit(hook["config"]["url"]).path
        return client.post(path, data=raw, content_type="application/json", **headers)


# ---------------------------------------------------------------------------------------------
# GitLab (self-hosted layout: the API under /api/v4)


class FakeGitLab(FakeProvider):
    service = "gitlab"
    token_ttl = 7200
    PROJECTS = {"acme-group/widget": 77, "gl-alice/notes": 78}

    def project(self, path: str) -> dict:
        namespace, name = path.rsplit("/", 1)
        return {
            "id": self.PROJECTS[path],
            "description": f"The {name} project",
            "name": name.title(),
            "path": name,
            "path_with_namespace": path,
            "default_branch": "main",
            "visibility": "private",
            "ssh_url_to_repo": f"git@127.0.0.1:{path}.git",
            "http_url_to_repo": f"{self.url}/{path}.git",
            "web_url": f"{self.url}/{path}",
            "last_activity_at": "2026-11-30T10:01:00.000Z",
            "namespace": {"full_path": namespace, "kind": "group" if namespace == "acme-group" else "user"},
            "permissions": {"project_access": {"access_level": 40}, "group_access": None},
        }

    def setup_routes(self) -> None:
        api = "/api/v4"
        project = api + r"/projects/(?P<pid>[^/]+)"
        self.route("GET", "/oauth/authorize", self.authorize)
        self.route("POST", "/oauth/token", self.token)
        self.route("GET", api + "/user", self.user)
        self.route("GET", api + "/namespaces", self.namespaces)
        self.route("GET", api + "/projects", self.owned)
        self.route("GET", api + r"/groups/(?P<group>[^/]+)/projects", self.group_projects)
        self.route("GET", project, self.get_project)
        self.route("GET", project + "/repository/branches", self.branches)
        self.route("GET", project + "/repository/tags", self.tags)
        self.route("GET", project + r"/repository/commits/(?P<ref>[^/]+)", self.commit)
        self.route("GET", project + r"/repository/files/(?P<fpath>[^/]+)", self.file)
        self.route("GET", project + "/repository/tree", self.tree)
        self.route("POST", project + "/deploy_keys", self.key_add)
        self.route("DELETE", project + r"/deploy_keys/(?P<item>\d+)", self.key_remove)
        self.route("POST", project + "/hooks", self.hook_add)
        self.route("DELETE", project + r"/hooks/(?P<item>\d+)", self.hook_remove)

    def token(self, request, **_):
        form = self.form_body(request)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            raise Reply(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        if form.get("grant_type") == "refresh_token":
            answer = self.grant(refresh=form.get("refresh_token"))
        elif form.get("grant_type") == "authorization_code":
            answer = self.grant(code=form.get("code"), redirect_uri=form.get("redirect_uri"))
        else:
            raise Reply(400, {"error": "unsupported_grant_type"})
        return {**answer, "token_type": "Bearer", "scope": "api", "created_at": 1796032800}

    def user(self, request, **_):
        self.bearer(request)
        return {
            "id": 31,
            "username": "gl-alice",
            "name": "Alice Lab",
            "state": "active",
            "avatar_url": f"{self.url}/uploads/-/system/user/avatar/31/avatar.png",
            "web_url": f"{self.url}/gl-alice",
        }

    def namespaces(self, request, **_):
        self.bearer(request)
        return [
            {
                "id": 31,
                "name": "Alice Lab",
                "path": "gl-alice",
                "kind": "user",
                "full_path": "gl-alice",
                "parent_id": None,
                "avatar_url": None,
                "web_url": f"{self.url}/gl-alice",
            },
            {
                "id": 12,
                "name": "Acme Group",
                "path": "acme-group",
                "kind": "group",
                "full_path": "acme-group",
                "parent_id": None,
                "avatar_url": None,
                "web_url": f"{self.url}/groups/acme-group",
            },
        ]

    def owned(self, request, **_):
        self.bearer(request)
        assert request["query"].get("owned") == "true"
        return [self.project("gl-alice/notes")]

    def group_projects(self, request, group, **_):
        self.bearer(request)
        if group != "acme-group":
            raise Reply(404, {"message": "404 Group Not Found"})
        listed = self.project("acme-group/widget")
        listed.pop("permissions")  # group listings carry none
        return [listed]

    def _path(self, pid: str) -> str:
        path = pid.replace("%2F", "/").replace("%2f", "/")
        if path not in self.PROJECTS:
            raise Reply(404, {"message": "404 Project Not Found"})
        return path

    def get_project(self, request, pid, **_):
        self.bearer(request)
        return self.project(self._path(pid))

    def branches(self, request, pid, **_):
        self.bearer(request)
        self._path(pid)
        return [
            {"name": "feature/login", "commit": {"id": FEATURE_SHA}, "default": False},
            {"name": "main", "commit": {"id": MAIN_SHA}, "default": True},
        ]

    def tags(self, request, pid, **_):
        self.bearer(request)
        self._path(pid)
        return [{"name": "v1.0.0", "target": TAG_SHA, "commit": {"id": TAG_SHA}}]

    def file(self, request, pid, fpath, **_):
        """GET /projects/:id/repository/files/:file_path?ref= (the path URL-encoded)."""
        self.bearer(request)
        self._path(pid)
        if "ref" not in request["query"]:
            raise Reply(400, {"error": "ref is missing"})
        path = unquote(fpath)
        if request["query"]["ref"] != "main" or path not in self.files:
            raise Reply(404, {"message": "404 File Not Found"})
        return {
            "file_name": path.rsplit("/", 1)[-1],
            "file_path": path,
            "ref": "main",
            "blob_id": self.encoded(path)["sha"],
            "commit_id": MAIN_SHA,
            "last_commit_id": MAIN_SHA,
            **self.encoded(path),
        }

    def tree(self, request, pid, **_):
        """GET /projects/:id/repository/tree?recursive=true&ref=&per_page=&page= (offset pages)."""
        self.bearer(request)
        self._path(pid)
        query = request["query"]
        if not self.files or query.get("ref", "main") != "main":
            raise Reply(404, {"message": "404 Tree Not Found"})
        nested = query.get("recursive") == "true"
        rows = [
            {"id": "d" * 40, "name": d.rsplit("/", 1)[-1], "type": "tree", "path": d, "mode": "040000"}
            for d in sorted(self.directories())
        ]
        rows += [
            {"id": self.encoded(p)["sha"], "name": p.rsplit("/", 1)[-1], "type": "blob", "path": p, "mode": "100644"}
            for p in sorted(self.files)
        ]
        if not nested:
            rows = [row for row in rows if "/" not in row["path"]]
        per_page = min(int(query.get("per_page", 20)), 100)
        page = int(query.get("page", 1))
        return rows[(page - 1) * per_page : page * per_page]

    def commit(self, request, pid, ref, **_):
        self.bearer(request)
        path = self._path(pid)
        sha = {"main": MAIN_SHA, "feature%2Flogin": FEATURE_SHA, "v1.0.0": TAG_SHA}.get(ref, ref)
        if sha not in (MAIN_SHA, FEATURE_SHA, TAG_SHA):
            raise Reply(404, {"message": "404 Commit Not Found"})
        return {
            "id": sha,
            "short_id": sha[:8],
            "title": "Release the widget",
            "message": "Release the widget\n",
            "author_name": "Alice Lab",
            "author_email": "alice@example.com",
            "authored_date": "2026-11-30T10:00:00.000+00:00",
            "committer_name": "Alice Lab",
            "committer_email": "alice@example.com",
            "committed_date": "2026-11-30T10:00:30.000+00:00",
            "created_at": "2026-11-30T10:00:30.000+00:00",
            "parent_ids": [],
            "web_url": f"{self.url}/{path}/-/commit/{sha}",
        }

    def key_add(self, request, pid, **_):
        self.bearer(request)
        path = self._path(pid)
        body = self.json_body(request)
        item = str(self.next_id())
        with self.lock:
            self.deploy_keys[item] = {"repo": path, **body}
        return 201, {
            "id": int(item),
            "title": body.get("title"),
            "key": body.get("key"),
            "can_push": body.get("can_push", False),
            "created_at": "2026-11-30T10:00:00.000Z",
        }

    def key_remove(self, request, pid, item, **_):
        self.bearer(request)
        with self.lock:
            if self.deploy_keys.pop(item, None) is None:
                raise Reply(404, {"message": "404 Deploy Key Not Found"})
            self.removed_keys.append(item)
        return 204, None

    def hook_add(self, request, pid, **_):
        self.bearer(request)
        path = self._path(pid)
        body = self.json_body(request)
        item = str(self.next_id())
        with self.lock:
            self.hooks[item] = {"repo": path, **body}
        return 201, {
            "id": int(item),
            "url": body.get("url"),
            "project_id": self.PROJECTS[path],
            "push_events": body.get("push_events"),
            "tag_push_events": body.get("tag_push_events"),
            "enable_ssl_verification": body.get("enable_ssl_verification"),
        }

    def hook_remove(self, request, pid, item, **_):
        self.bearer(request)
        with self.lock:
            if self.hooks.pop(item, None) is None:
                raise Reply(404, {"message": "404 Not found"})
            self.removed_hooks.append(item)
        return 204, None

    def deliver(self, client, event: str, body: dict | bytes, *, delivery: str | None = None, token=None):
        hook = self.only_hook()
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {
            "HTTP_X_GITLAB_EVENT": event,
            "HTTP_X_GITLAB_EVENT_UUID": delivery or str(uuid.uuid4()),
            "HTTP_X_GITLAB_WEBHOOK_UUID": "5b6b7d3a-6f0d-4c8f-9c39-6d4f0f2a1b11",
            "HTTP_X_GITLAB_INSTANCE": self.url,
            "HTTP_USER_AGENT": "GitLab/17.5.0",
        }
        if token is not False:
            headers["HTTP_X_GITLAB_TOKEN"] = token or hook["token"]
        path = urlsplit(hook["url"]).path
        return client.post(path, data=raw, content_type="application/json", **headers)


# ---------------------------------------------------------------------------------------------
# Bitbucket Cloud (API 2.0 under /2.0 of the same host)


class FakeBitbucket(FakeProvider):
    service = "bitbucket"
    token_ttl = 7200
    REPOS = {"acme-ws/widget", "acme-ws/legacy"}
    src_pagelen = 2  # small pages, so listings take several (Bitbucket's own cap is 100)

    def repo(self, full_name: str) -> dict:
        workspace, slug = full_name.split("/")
        return {
            "type": "repository",
            "full_name": full_name,
            "name": slug.title(),
            "slug": slug,
            "uuid": "{0d2b8f5e-93f4-4c2a-9a55-7f3d2f1b9c11}",
            "is_private": True,
            "description": f"The {slug} repository",
            "updated_on": "2026-11-30T10:02:00.000000+00:00",
            "mainbranch": {"type": "branch", "name": "main"},
            "links": {
                "html": {"href": f"{self.url}/{full_name}"},
                "avatar": {"href": f"{self.url}/{full_name}/avatar/32/"},
                "clone": [
                    {"name": "https", "href": f"{self.url}/{full_name}.git"},
                    {"name": "ssh", "href": f"git@127.0.0.1:{full_name}.git"},
                ],
            },
            "workspace": {"type": "workspace", "slug": workspace},
        }

    def target(self, full_name: str, sha: str) -> dict:
        return {
            "type": "commit",
            "hash": sha,
            "date": "2026-11-30T10:03:00+00:00",
            "message": "Release the widget\n",
            "author": {
                "type": "author",
                "raw": "Alice Bucket <alice@example.com>",
                "user": {
                    "type": "user",
                    "display_name": "Alice Bucket",
                    "nickname": "bb-alice",
                    "uuid": "{5c1f7e3a-1d2b-4c5d-8e9f-0a1b2c3d4e5f}",
                    "links": {
                        "html": {"href": f"{self.url}/%7B5c1f7e3a%7D/"},
                        "avatar": {"href": f"{self.url}/account/bb-alice/avatar"},
                    },
                },
            },
            "links": {"html": {"href": f"{self.url}/{full_name}/commits/{sha}"}},
        }

    def setup_routes(self) -> None:
        api = "/2.0"
        repo = api + r"/repositories/(?P<ws>[^/]+)/(?P<slug>[^/]+)"
        self.route("GET", "/site/oauth2/authorize", self.authorize)
        self.route("POST", "/site/oauth2/access_token", self.token)
        self.route("GET", api + "/user", self.user)
        self.route("GET", api + "/user/permissions/workspaces", self.workspaces)
        self.route("GET", api + r"/repositories/(?P<ws>[^/]+)", self.list_repos)
        self.route("GET", repo, self.get_repo)
        self.route("GET", repo + "/refs/branches", self.branches)
        self.route("GET", repo + "/refs/tags", self.tags)
        self.route("GET", repo + r"/refs/(?P<folder>branches|tags)/(?P<name>[^/]+)", self.ref)
        self.route("GET", repo + r"/commit/(?P<sha>[0-9a-f]+)", self.commit)
        self.route("GET", repo + r"/src/(?P<ref>[^/]+)/(?P<fpath>.*)", self.src)
        self.route("POST", repo + "/deploy-keys", self.key_add)
        self.route("DELETE", repo + r"/deploy-keys/(?P<item>[^/]+)", self.key_remove)
        self.route("POST", repo + "/hooks", self.hook_add)
        self.route("DELETE", repo + r"/hooks/(?P<item>[^/]+)", self.hook_remove)

    def page(self, values: list) -> dict:
        return {"pagelen": 100, "size": len(values), "page": 1, "values": values}

    def token(self, request, **_):
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request["headers"].get("Authorization") != expected:
            raise Reply(401, {"error": "invalid_client", "error_description": "Invalid OAuth client credentials"})
        form = self.form_body(request)
        if form.get("grant_type") == "refresh_token":
            answer = self.grant(refresh=form.get("refresh_token"))
        elif form.get("grant_type") == "authorization_code":
            answer = self.grant(code=form.get("code"))
        else:
            raise Reply(400, {"error": "unsupported_grant_type"})
        return {**answer, "scopes": "repository:admin webhook account", "state": "authorization_code"}

    def user(self, request, **_):
        self.bearer(request)
        return {
            "type": "user",
            "username": "bb-alice",
            "nickname": "bb-alice",
            "display_name": "Alice Bucket",
            "uuid": "{5c1f7e3a-1d2b-4c5d-8e9f-0a1b2c3d4e5f}",
            "links": {
                "html": {"href": f"{self.url}/bb-alice/"},
                "avatar": {"href": f"{self.url}/account/bb-alice/avatar"},
            },
        }

    def workspaces(self, request, **_):
        self.bearer(request)
        return self.page(
            [
                {
                    "type": "workspace_membership",
                    "permission": "owner",
                    "workspace": {
                        "type": "workspace",
                        "slug": "bb-alice",
                        "name": "Alice Bucket",
                        "links": {
                            "html": {"href": f"{self.url}/bb-alice/"},
                            "avatar": {"href": f"{self.url}/workspaces/bb-alice/avatar"},
                        },
                    },
                },
                {
                    "type": "workspace_membership",
                    "permission": "collaborator",
                    "workspace": {
                        "type": "workspace",
                        "slug": "acme-ws",
                        "name": "Acme Workspace",
                        "links": {
                            "html": {"href": f"{self.url}/acme-ws/"},
                            "avatar": {"href": f"{self.url}/workspaces/acme-ws/avatar"},
                        },
                    },
                },
            ]
        )

    def list_repos(self, request, ws, **_):
        self.bearer(request)
        if ws != "acme-ws":
            return self.page([])
        role = request["query"].get("role")
        names = ["acme-ws/widget"] if role == "admin" else ["acme-ws/widget", "acme-ws/legacy"]
        return self.page([self.repo(name) for name in names])

    def _known(self, ws, slug) -> str:
        full = f"{ws}/{slug}"
        if full not in self.REPOS:
            raise Reply(404, {"type": "error", "error": {"message": "Repository acme-ws/nope not found"}})
        return full

    def get_repo(self, request, ws, slug, **_):
        self.bearer(request)
        return self.repo(self._known(ws, slug))

    def branches(self, request, ws, slug, **_):
        self.bearer(request)
        full = self._known(ws, slug)
        return self.page(
            [
                {"type": "branch", "name": "feature/login", "target": self.target(full, FEATURE_SHA)},
                {"type": "branch", "name": "main", "target": self.target(full, MAIN_SHA)},
            ]
        )

    def tags(self, request, ws, slug, **_):
        self.bearer(request)
        full = self._known(ws, slug)
        return self.page([{"type": "tag", "name": "v1.0.0", "target": self.target(full, TAG_SHA)}])

    def ref(self, request, ws, slug, folder, name, **_):
        self.bearer(request)
        full = self._known(ws, slug)
        shas = {"branches": {"main": MAIN_SHA, "feature%2Flogin": FEATURE_SHA}, "tags": {"v1.0.0": TAG_SHA}}[folder]
        if name not in shas:
            raise Reply(404, {"type": "error", "error": {"message": f"{name} not found"}})
        return {
            "type": folder[:-1] if folder == "tags" else "branch",
            "name": name,
            "target": self.target(full, shas[name]),
        }

    def commit(self, request, ws, slug, sha, **_):
        self.bearer(request)
        full = self._known(ws, slug)
        if sha not in (MAIN_SHA, FEATURE_SHA, TAG_SHA):
            raise Reply(404, {"type": "error", "error": {"message": "Commit not found"}})
        return self.target(full, sha)

    def src(self, request, ws, slug, ref, fpath, **_):
        """GET /2.0/repositories/{ws}/{slug}/src/{commit}/{path}: a file's raw bytes, or a
        directory's entries (nested down to ``max_depth``) in pages linked by ``next``."""
        self.bearer(request)
        full = self._known(ws, slug)
        if unquote(ref) not in ("main", MAIN_SHA) or not self.files:
            raise Reply(404, {"type": "error", "error": {"message": "Commit not found"}})
        path = unquote(fpath).strip("/")
        if path in self.files:
            return self.files[path].encode()
        if path and path not in self.directories():
            raise Reply(404, {"type": "error", "error": {"message": f"No such file or directory: {path}"}})
        query = request["query"]
        depth = int(query.get("max_depth", 1))
        prefix = path + "/" if path else ""
        entries = [("commit_directory", d) for d in sorted(self.directories())]
        entries += [("commit_file", p) for p in sorted(self.files)]
        values = [
            {"type": kind, "path": item, "commit": {"type": "commit", "hash": MAIN_SHA}}
            for kind, item in entries
            if item.startswith(prefix) and item[len(prefix) :].count("/") < depth
        ]
        size = min(int(query.get("pagelen", 10)), self.src_pagelen)
        page = int(query.get("page", 1))
        answer = {"pagelen": size, "page": page, "values": values[(page - 1) * size : page * size]}
        if page * size < len(values):
            following = {**query, "page": str(page + 1)}
            answer["next"] = f"{self.url}/2.0/repositories/{full}/src/{ref}/{fpath}?{urlencode(following)}"
        return answer

    def key_add(self, request, ws, slug, **_):
        self.bearer(request)
        full = self._known(ws, slug)
        body = self.json_body(request)
        item = str(self.next_id())
        with self.lock:
            self.deploy_keys[item] = {"repo": full, **body}
        return 200, {
            "type": "deploy_key",
            "id": int(item),
            "key": body.get("key"),
            "label": body.get("label"),
            "created_on": "2026-11-30T10:00:00.000000+00:00",
        }

    def key_remove(self, request, ws, slug, item, **_):
        self.bearer(request)
        with self.lock:
            if self.deploy_keys.pop(item, None) is None:
                raise Reply(404, {"type": "error", "error": {"message": "Deploy key not found"}})
            self.removed_keys.append(item)
        return 204, None

    def hook_add(self, request, ws, slug, **_):
        self.bearer(request)
        full = self._known(ws, slug)
        body = self.json_body(request)
        item = "{" + str(uuid.uuid4()) + "}"
        with self.lock:
            self.hooks[item] = {"repo": full, **body}
        return 201, {
            "type": "webhook_subscription",
            "uuid": item,
            "url": body.get("url"),
            "description": body.get("description"),
            "events": body.get("events"),
            "active": True,
            "secret_set": bool(body.get("secret")),
        }

    def hook_remove(self, request, ws, slug, item, **_):
        self.bearer(request)
        item = item.replace("%7B", "{").replace("%7D", "}")
        with self.lock:
            if self.hooks.pop(item, None) is None:
                raise Reply(404, {"type": "error", "error": {"message": "Webhook not found"}})
            self.removed_hooks.append(item)
        return 204, None

    def deliver(self, client, event: str, body: dict | bytes, *, delivery: str | None = None, signature=None):
        hook = self.only_hook()
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {
            "HTTP_X_EVENT_KEY": event,
            "HTTP_X_REQUEST_UUID": delivery or str(uuid.uuid4()),
            "HTTP_X_HOOK_UUID": next(iter(self.hooks)),
            "HTTP_X_ATTEMPT_NUMBER": "1",
            "HTTP_USER_AGENT": "Bitbucket-Webhooks/2.0",
        }
        if signature is not False:
            headers["HTTP_X_HUB_SIGNATURE"] = signature or self.sign(hook["secret"], raw)
        path = urlsplit(hook["url"]).path
        return client.post(path, data=raw, content_type="application/json", **headers)
