"""GitLab (gitlab.com or self-hosted, REST API v4) for build triggers.

OAuth web flow: ``<web>/oauth/authorize`` then ``POST <web>/oauth/token``; access tokens expire
(two hours by default) and come with a refresh token. API base ``<web>/api/v4``; a project is
addressed by its URL-encoded path (``group%2Fsub%2Fproject``). A webhook carries its secret as
``X-Gitlab-Token``; ``X-Gitlab-Event-UUID`` is the delivery id, ``X-Gitlab-Event`` the event
(``Push Hook``, ``Tag Push Hook``).
"""

from __future__ import annotations

import hmac
import posixpath
from urllib.parse import quote, urlencode

from triggers.metadata import PayloadError
from triggers.providers.base import (
    PAGE_SIZE,
    ZERO_SHA,
    Provider,
    SourceRepository,
    Token,
    commit_info,
    decoded_file,
    epoch,
    is_dockerfile_name,
    person,
    ref_names,
)

SCOPES = "api"
# Maintainer (40) and Owner (50) may add deploy keys and hooks.
ADMIN_ACCESS_LEVEL = 40
# The recursive tree comes in pages of PAGE_SIZE entries; a repository with more files than this
# many pages hold is listed in part (the Dockerfile path can still be typed in).
TREE_PAGES_MAX = 20


def _project(source: str) -> str:
    return f"/projects/{quote(source, safe='')}"


class GitLab(Provider):
    service = "gitlab"
    title = "GitLab"
    default_web_url = "https://gitlab.com"
    delivery_header = "HTTP_X_GITLAB_EVENT_UUID"
    event_header = "HTTP_X_GITLAB_EVENT"

    def derived_api_url(self) -> str:
        return f"{self.web_url}/api/v4"

    # -- OAuth ------------------------------------------------------------------------------

    def authorize_url(self, *, state: str, redirect_uri: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": SCOPES,
                "state": state,
            }
        )
        return f"{self.web_url}/oauth/authorize?{query}"

    def token_exchange(self, *, code: str, redirect_uri: str) -> Token:
        data = self.http(
            "POST",
            f"{self.web_url}/oauth/token",
            form={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        return self.token_from(data)

    def token_refresh(self, *, refresh_token: str, redirect_uri: str) -> Token:
        data = self.http(
            "POST",
            f"{self.web_url}/oauth/token",
            form={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "redirect_uri": redirect_uri,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        return self.token_from(data)

    # -- pickers ----------------------------------------------------------------------------

    def namespaces(self, token: str) -> list[dict]:
        self.api("GET", "/user", token)  # a clear 401 before listing
        found = []
        for row in self.api("GET", f"/namespaces?per_page={PAGE_SIZE}", token) or []:
            path = row.get("full_path") or row.get("path")
            if not path:
                continue
            found.append(
                {
                    "personal": row.get("kind") == "user",
                    "id": path,
                    "title": row.get("name") or path,
                    "avatar_url": row.get("avatar_url"),
                    "url": row.get("web_url") or f"{self.web_url}/{path}",
                    "score": 1,
                }
            )
        return found

    def sources(self, token: str, namespace: str) -> list[dict]:
        user = self.api("GET", "/user", token) or {}
        if namespace == user.get("username"):
            rows = self.api("GET", f"/projects?owned=true&order_by=last_activity_at&per_page={PAGE_SIZE}", token)
        else:
            rows = self.api(
                "GET", f"/groups/{quote(namespace, safe='')}/projects?per_page={PAGE_SIZE}", token, missing_ok=True
            )

        def admin(row) -> bool:
            permissions = row.get("permissions")
            if not isinstance(permissions, dict):
                # Group listings carry no permissions: let the user pick, GitLab decides at activation.
                return True
            levels = [
                (permissions.get(kind) or {}).get("access_level") or 0 for kind in ("project_access", "group_access")
            ]
            return max(levels) >= ADMIN_ACCESS_LEVEL

        return [
            {
                "name": row.get("path") or "",
                "full_name": row.get("path_with_namespace") or "",
                "description": row.get("description") or "",
                "last_updated": epoch(row.get("last_activity_at")),
                "url": row.get("web_url") or "",
                "has_admin_permissions": admin(row),
                "private": row.get("visibility") == "private",
            }
            for row in rows or []
        ]

    def branches(self, token: str, source: str) -> list[str]:
        rows = self.api("GET", f"{_project(source)}/repository/branches?per_page={PAGE_SIZE}", token) or []
        return ref_names(rows)

    def tags(self, token: str, source: str) -> list[str]:
        rows = self.api("GET", f"{_project(source)}/repository/tags?per_page={PAGE_SIZE}", token) or []
        return ref_names(rows)

    # -- activation -------------------------------------------------------------------------

    def repository(self, token: str, source: str) -> SourceRepository:
        data = self.api("GET", _project(source), token) or {}
        return SourceRepository(
            full_name=data.get("path_with_namespace") or source,
            git_url=data.get("ssh_url_to_repo") or f"git@{self.web_host}:{source}.git",
            html_url=data.get("web_url") or f"{self.web_url}/{source}",
            default_branch=data.get("default_branch") or "main",
            project_id=str(data.get("id") or ""),
        )

    def deploy_key_add(self, token: str, source: str, *, title: str, public_key: str) -> str:
        data = self.api(
            "POST",
            f"{_project(source)}/deploy_keys",
            token,
            json_body={"title": title, "key": public_key, "can_push": False},
        )
        return str((data or {}).get("id") or "")

    def deploy_key_remove(self, token: str, source: str, key_id: str) -> None:
        self.api("DELETE", f"{_project(source)}/deploy_keys/{quote(str(key_id), safe='')}", token, missing_ok=True)

    def hook_add(self, token: str, source: str, *, url: str, secret: str) -> str:
        data = self.api(
            "POST",
            f"{_project(source)}/hooks",
            token,
            json_body={
                "url": url,
                "push_events": True,
                "tag_push_events": True,
                "token": secret,
                "enable_ssl_verification": True,
            },
        )
        return str((data or {}).get("id") or "")

    def hook_remove(self, token: str, source: str, hook_id: str) -> None:
        self.api("DELETE", f"{_project(source)}/hooks/{quote(str(hook_id), safe='')}", token, missing_ok=True)

    # -- Dockerfiles ------------------------------------------------------------------------

    def dockerfile_load(self, token: str, source: str, *, path: str, ref: str) -> str | None:
        query = urlencode({"ref": ref})
        data = self.api(
            "GET", f"{_project(source)}/repository/files/{quote(path, safe='')}?{query}", token, missing_ok=True
        )
        return decoded_file(data, self.title)

    def dockerfile_paths(self, token: str, source: str, *, ref: str) -> list[str]:
        found: list[str] = []
        for page in range(1, TREE_PAGES_MAX + 1):
            query = urlencode({"recursive": "true", "ref": ref, "per_page": PAGE_SIZE, "page": page})
            # A project without commits has no tree: 404, like an unknown ref.
            rows = self.api("GET", f"{_project(source)}/repository/tree?{query}", token, missing_ok=True) or []
            found += [
                row["path"]
                for row in rows
                if isinstance(row, dict)
                and row.get("type") == "blob"
                and isinstance(row.get("path"), str)
                and is_dockerfile_name(posixpath.basename(row["path"]))
            ]
            if len(rows) < PAGE_SIZE:
                break
        return sorted(found)

    # -- Run Now ----------------------------------------------------------------------------

    def _commit(self, data: dict) -> dict:
        return {
            "commit": data.get("id") or "",
            "commit_info": commit_info(
                url=data.get("web_url"),
                message=data.get("message"),
                date=data.get("committed_date") or data.get("authored_date") or data.get("created_at"),
                author=person(data.get("author_name")),
                committer=person(data.get("committer_name")),
            ),
        }

    def commit_metadata(self, token: str, source: str, *, revision: str, kind: str | None) -> dict:
        # The commits endpoint takes a SHA, a branch or a tag name.
        data = self.api("GET", f"{_project(source)}/repository/commits/{quote(revision, safe='')}", token) or {}
        return self._commit(data)

    # -- webhooks ---------------------------------------------------------------------------

    def signature_valid(self, *, meta: dict, body: bytes, secret: str) -> bool:
        presented = meta.get("HTTP_X_GITLAB_TOKEN") or ""
        return bool(presented and secret) and hmac.compare_digest(presented.encode(), secret.encode())

    def event_kind(self, meta: dict) -> str:
        return "push" if self.event_name(meta) in ("Push Hook", "Tag Push Hook") else "other"

    def push_metadata(self, payload, *, remote: dict, lookup_commit=None) -> dict | None:
        if not isinstance(payload, dict) or payload.get("object_kind") not in ("push", "tag_push"):
            raise PayloadError("a GitLab push payload has object_kind push or tag_push")
        if not isinstance(payload.get("ref"), str):
            raise PayloadError("a GitLab push payload has a ref")
        sha = payload.get("checkout_sha")
        if not sha or payload.get("after") == ZERO_SHA:
            return None  # a deleted branch or tag
        if not isinstance(sha, str):
            raise PayloadError("checkout_sha must be a string")
        project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
        repository = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
        metadata = {
            "commit": sha,
            "ref": payload["ref"],
            "default_branch": project.get("default_branch") or remote.get("default_branch") or "",
            "git_url": project.get("git_ssh_url") or repository.get("git_ssh_url") or remote.get("git_url") or "",
        }
        commits = payload.get("commits") if isinstance(payload.get("commits"), list) else []
        found = next((c for c in commits if isinstance(c, dict) and c.get("id") == sha), None)
        if found is None:
            # Tag pushes often list no commits: ask the API about the tagged commit.
            if lookup_commit is not None:
                looked_up = lookup_commit(sha)
                if looked_up:
                    metadata["commit_info"] = looked_up["commit_info"]
            return metadata
        author = found.get("author") if isinstance(found.get("author"), dict) else {}
        if author.get("email") and author.get("email") == payload.get("user_email") and payload.get("user_username"):
            username = payload["user_username"]
            who = person(username, f"{self.web_url}/{username}", payload.get("user_avatar"))
        else:
            who = person(author.get("name"))
        metadata["commit_info"] = commit_info(
            url=found.get("url"), message=found.get("message"), date=found.get("timestamp"), author=who, committer=None
        )
        return metadata
