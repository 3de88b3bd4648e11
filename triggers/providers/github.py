"""GitHub and GitHub Enterprise (REST API v3) for build triggers.

OAuth web flow: ``<web>/login/oauth/authorize`` then ``POST <web>/login/oauth/access_token``
(OAuth app tokens do not expire). API base ``https://api.github.com``, or ``<web>/api/v3`` for
GitHub Enterprise. Webhooks are signed with ``X-Hub-Signature-256`` (HMAC-SHA256 of the body
with the hook's secret); ``X-GitHub-Delivery`` is the delivery id, ``X-GitHub-Event`` the event
(``ping`` when the hook is created, ``push`` for pushes).
"""

from __future__ import annotations

import posixpath
from urllib.parse import quote, urlencode

from triggers.metadata import PayloadError
from triggers.providers.base import (
    PAGE_SIZE,
    ZERO_SHA,
    Provider,
    ProviderError,
    SourceRepository,
    Token,
    commit_info,
    decoded_file,
    epoch,
    hmac_sha256_matches,
    is_dockerfile_name,
    person,
    ref_names,
)

# ``repo``: private repositories, their deploy keys and hooks; ``read:org``: the organizations.
SCOPES = "repo read:org"


def _repo_path(source: str) -> str:
    owner, _, name = source.partition("/")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


class GitHub(Provider):
    service = "github"
    title = "GitHub"
    default_web_url = "https://github.com"
    delivery_header = "HTTP_X_GITHUB_DELIVERY"
    event_header = "HTTP_X_GITHUB_EVENT"

    def derived_api_url(self) -> str:
        if self.web_host == "github.com":
            return "https://api.github.com"
        return f"{self.web_url}/api/v3"

    def auth_headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    # -- OAuth ------------------------------------------------------------------------------

    def authorize_url(self, *, state: str, redirect_uri: str) -> str:
        query = urlencode({"client_id": self.client_id, "redirect_uri": redirect_uri, "scope": SCOPES, "state": state})
        return f"{self.web_url}/login/oauth/authorize?{query}"

    def token_exchange(self, *, code: str, redirect_uri: str) -> Token:
        # GitHub answers 200 with {"error": ...} for a bad code: token_from reports it.
        data = self.http(
            "POST",
            f"{self.web_url}/login/oauth/access_token",
            form={
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "code": code,
                "redirect_uri": redirect_uri,
            },
        )
        return self.token_from(data)

    # -- pickers ----------------------------------------------------------------------------

    def namespaces(self, token: str) -> list[dict]:
        user = self.api("GET", "/user", token) or {}
        login = user.get("login") or ""
        found = [
            {
                "personal": True,
                "id": login,
                "title": user.get("name") or login,
                "avatar_url": user.get("avatar_url"),
                "url": user.get("html_url") or f"{self.web_url}/{login}",
                "score": ((user.get("plan") or {}).get("private_repos") or 0),
            }
        ]
        for org in self.api("GET", f"/user/orgs?per_page={PAGE_SIZE}", token) or []:
            name = org.get("login")
            if name and name != login:
                found.append(
                    {
                        "personal": False,
                        "id": name,
                        "title": name,
                        "avatar_url": org.get("avatar_url"),
                        "url": f"{self.web_url}/{name}",
                        "score": 0,
                    }
                )
        return found

    def sources(self, token: str, namespace: str) -> list[dict]:
        user = self.api("GET", "/user", token) or {}
        if namespace == user.get("login"):
            rows = self.api("GET", f"/user/repos?affiliation=owner&sort=updated&per_page={PAGE_SIZE}", token)
        else:
            rows = self.api(
                "GET",
                f"/orgs/{quote(namespace, safe='')}/repos?type=member&per_page={PAGE_SIZE}",
                token,
                missing_ok=True,
            )
        return [
            {
                "name": row.get("name") or "",
                "full_name": row.get("full_name") or "",
                "description": row.get("description") or "",
                "last_updated": epoch(row.get("pushed_at")),
                "url": row.get("html_url") or "",
                "has_admin_permissions": bool((row.get("permissions") or {}).get("admin")),
                "private": bool(row.get("private")),
            }
            for row in rows or []
        ]

    def branches(self, token: str, source: str) -> list[str]:
        rows = self.api("GET", f"{_repo_path(source)}/branches?per_page={PAGE_SIZE}", token) or []
        return ref_names(rows)

    def tags(self, token: str, source: str) -> list[str]:
        rows = self.api("GET", f"{_repo_path(source)}/tags?per_page={PAGE_SIZE}", token) or []
        return ref_names(rows)

    # -- activation -------------------------------------------------------------------------

    def repository(self, token: str, source: str) -> SourceRepository:
        data = self.api("GET", _repo_path(source), token) or {}
        return SourceRepository(
            full_name=data.get("full_name") or source,
            git_url=data.get("ssh_url") or f"git@{self.web_host}:{source}.git",
            html_url=data.get("html_url") or f"{self.web_url}/{source}",
            default_branch=data.get("default_branch") or "main",
            project_id=str(data.get("id") or ""),
        )

    def deploy_key_add(self, token: str, source: str, *, title: str, public_key: str) -> str:
        data = self.api(
            "POST",
            f"{_repo_path(source)}/keys",
            token,
            json_body={"title": title, "key": public_key, "read_only": True},
        )
        return str((data or {}).get("id") or "")

    def deploy_key_remove(self, token: str, source: str, key_id: str) -> None:
        self.api("DELETE", f"{_repo_path(source)}/keys/{quote(str(key_id), safe='')}", token, missing_ok=True)

    def hook_add(self, token: str, source: str, *, url: str, secret: str) -> str:
        data = self.api(
            "POST",
            f"{_repo_path(source)}/hooks",
            token,
            json_body={
                "name": "web",
                "active": True,
                "events": ["push"],
                "config": {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
            },
        )
        return str((data or {}).get("id") or "")

    def hook_remove(self, token: str, source: str, hook_id: str) -> None:
        self.api("DELETE", f"{_repo_path(source)}/hooks/{quote(str(hook_id), safe='')}", token, missing_ok=True)

    # -- Dockerfiles ------------------------------------------------------------------------

    def dockerfile_load(self, token: str, source: str, *, path: str, ref: str) -> str | None:
        query = urlencode({"ref": ref})
        data = self.api("GET", f"{_repo_path(source)}/contents/{quote(path, safe='/')}?{query}", token, missing_ok=True)
        return decoded_file(data, self.title)

    def dockerfile_paths(self, token: str, source: str, *, ref: str) -> list[str]:
        try:
            data = self.api("GET", f"{_repo_path(source)}/git/trees/{quote(ref, safe='/')}?recursive=1", token)
        except ProviderError as exc:
            if exc.status == 409:
                return []  # GitHub's answer for a repository without commits
            raise
        tree = (data or {}).get("tree") or []
        return sorted(
            row["path"]
            for row in tree
            if isinstance(row, dict)
            and row.get("type") == "blob"
            and isinstance(row.get("path"), str)
            and is_dockerfile_name(posixpath.basename(row["path"]))
        )

    # -- Run Now ----------------------------------------------------------------------------

    def commit_metadata(self, token: str, source: str, *, revision: str, kind: str | None) -> dict:
        # /commits/{ref} takes a SHA, a branch or a tag name alike.
        ref = {"branch": f"heads/{revision}", "tag": f"tags/{revision}"}.get(kind or "", revision)
        data = self.api("GET", f"{_repo_path(source)}/commits/{quote(ref, safe='/')}", token) or {}
        detail = data.get("commit") or {}

        def someone(account, signature):
            account = account or {}
            signature = signature or {}
            return person(
                account.get("login") or signature.get("name"), account.get("html_url"), account.get("avatar_url")
            )

        return {
            "commit": data.get("sha") or "",
            "commit_info": commit_info(
                url=data.get("html_url"),
                message=detail.get("message"),
                date=(detail.get("committer") or {}).get("date") or (detail.get("author") or {}).get("date"),
                author=someone(data.get("author"), detail.get("author")),
                committer=someone(data.get("committer"), detail.get("committer")),
            ),
        }

    # -- webhooks ---------------------------------------------------------------------------

    def signature_valid(self, *, meta: dict, body: bytes, secret: str) -> bool:
        return hmac_sha256_matches(secret, body, meta.get("HTTP_X_HUB_SIGNATURE_256"))

    def event_kind(self, meta: dict) -> str:
        event = self.event_name(meta)
        return {"push": "push", "ping": "ping"}.get(event, "other")

    def push_metadata(self, payload, *, remote: dict, lookup_commit=None) -> dict | None:
        if not isinstance(payload, dict) or not isinstance(payload.get("ref"), str):
            raise PayloadError("a GitHub push payload has a ref")
        repository = payload.get("repository")
        if not isinstance(repository, dict):
            raise PayloadError("a GitHub push payload has a repository")
        head = payload.get("head_commit")
        if payload.get("deleted") or head is None or payload.get("after") == ZERO_SHA:
            return None  # a deleted branch or tag: nothing to build
        if not isinstance(head, dict) or not isinstance(head.get("id"), str):
            raise PayloadError("head_commit.id is required")
        sender = payload.get("sender") if isinstance(payload.get("sender"), dict) else {}

        def someone(who):
            if not isinstance(who, dict):
                return None
            username = who.get("username") or who.get("name")
            if username and username == sender.get("login"):
                return person(username, sender.get("html_url"), sender.get("avatar_url"))
            url = f"{self.web_url}/{who['username']}" if who.get("username") else ""
            return person(username, url, "")

        return {
            "commit": head["id"],
            "ref": payload["ref"],
            "default_branch": repository.get("default_branch")
            or repository.get("master_branch")
            or remote.get("default_branch")
            or "",
            "git_url": repository.get("ssh_url") or remote.get("git_url") or "",
            "commit_info": commit_info(
                url=head.get("url"),
                message=head.get("message"),
                date=head.get("timestamp"),
                author=someone(head.get("author")),
                committer=someone(head.get("committer")),
            ),
        }
