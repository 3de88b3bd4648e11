"""What a push says and what a trigger makes of it: payload checks, skip rules, tags, config.

Pure functions, no database: the services call them, the tests drive them through the webhook.

The custom git payload (guide section 3.2.2) is checked field by field so that a 400 names the
field and the rule it broke. The metadata kept on a build (and carried by the build events) is
``commit, ref, default_branch, git_url, commit_info``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

COMMIT_RE = re.compile(r"[A-Fa-f0-9]{7,}")
REF_RE = re.compile(r"refs/(heads|tags|remotes)/(.+)")
SKIP_MARKERS = ("[skip build]", "[build skip]")

# Docker tag grammar; a ref or template result is squeezed into it (see tag_normalize).
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
TEMPLATE_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}")
TEMPLATES_MAX = 20
TEMPLATE_MAX_LENGTH = 256
REGEX_MAX_LENGTH = 1024
PATH_MAX_LENGTH = 1024
GIT_URL_MAX_LENGTH = 2048


class PayloadError(ValueError):
    """The webhook payload breaks the documented format; the message names the field and rule."""


class ConfigError(ValueError):
    """A trigger config value is unusable; the message names the key."""


# ---------------------------------------------------------------------------------------------
# The custom git payload (guide 3.2.2)

_PERSON_FIELDS = ("username", "url", "avatar_url")
_COMMIT_INFO_FIELDS = ("url", "message", "date")


def _require_strings(obj: dict, fields: tuple[str, ...], where: str) -> None:
    for field in fields:
        if field not in obj:
            raise PayloadError(f"{where}{field} is required")
        if not isinstance(obj[field], str):
            raise PayloadError(f"{where}{field} must be a string")
        if "\x00" in obj[field]:
            # Kept as JSON on the build; PostgreSQL's jsonb cannot hold a NUL character.
            raise PayloadError(f"{where}{field} must not contain NUL characters")


def payload_validate(payload) -> dict:
    """Check a decoded custom git payload; return the metadata it gives (a new dict).

    Required: ``commit`` (7 or more hex digits), ``ref`` (``refs/heads|tags|remotes/<name>``),
    ``default_branch``. Optional ``commit_info`` with ``url``, ``message``, ``date`` required in
    it, and optional ``author``/``committer`` in it with ``username``, ``url``, ``avatar_url``.
    Other keys are allowed and ignored, as in Quay's schema.
    """
    if not isinstance(payload, dict):
        raise PayloadError("the payload must be a JSON object")
    _require_strings(payload, ("commit",), "")
    if not COMMIT_RE.fullmatch(payload["commit"]):
        raise PayloadError("commit must be at least 7 hexadecimal characters (a git commit SHA or its prefix)")
    _require_strings(payload, ("ref",), "")
    if not REF_RE.fullmatch(payload["ref"]):
        raise PayloadError("ref must look like refs/heads/<branch>, refs/tags/<tag> or refs/remotes/<name>")
    _require_strings(payload, ("default_branch",), "")
    metadata = {
        "commit": payload["commit"],
        "ref": payload["ref"],
        "default_branch": payload["default_branch"],
    }
    if "commit_info" in payload:
        info = payload["commit_info"]
        if not isinstance(info, dict):
            raise PayloadError("commit_info must be an object")
        _require_strings(info, _COMMIT_INFO_FIELDS, "commit_info.")
        cleaned = {field: info[field] for field in _COMMIT_INFO_FIELDS}
        for role in ("author", "committer"):
            if role not in info:
                continue
            person = info[role]
            if not isinstance(person, dict):
                raise PayloadError(f"commit_info.{role} must be an object")
            _require_strings(person, _PERSON_FIELDS, f"commit_info.{role}.")
            cleaned[role] = {field: person[field] for field in _PERSON_FIELDS}
        metadata["commit_info"] = cleaned
    return metadata


# ---------------------------------------------------------------------------------------------
# Refs, skipping, the branch/tag filter


@dataclass(frozen=True)
class ParsedRef:
    kind: str  # "branch" | "tag" | "remote"
    name: str


_REF_KINDS = {"heads": "branch", "tags": "tag", "remotes": "remote"}


def ref_parse(ref: str | None) -> ParsedRef | None:
    if not ref:
        return None
    match = REF_RE.fullmatch(ref)
    if match is None:
        return None
    return ParsedRef(kind=_REF_KINDS[match.group(1)], name=match.group(2))


def commit_skipped(metadata: dict) -> bool:
    """Chapter 4: ``[skip build]`` or ``[build skip]`` anywhere in the commit message."""
    message = (metadata.get("commit_info") or {}).get("message") or ""
    return any(marker in message for marker in SKIP_MARKERS)


def ref_matches(regex: str | None, ref: str | None) -> bool:
    """Whether a ref passes the trigger's branch/tag filter.

    As in Quay, the expression must match all of the ref without its ``refs/`` prefix
    (``heads/main``, ``tags/v1.2``); no filter lets everything through, and a build without a
    ref (Run Now on a bare commit) passes.
    """
    if not regex or not ref:
        return True
    subject = ref.split("/", 1)[1] if "/" in ref else ref
    return re.fullmatch(regex, subject) is not None


# ---------------------------------------------------------------------------------------------
# Tags


def tag_normalize(value: str) -> str | None:
    """A valid Docker tag from a ref name or template result, or None when nothing is left.

    Characters a tag cannot hold (``/`` in ``feature/x``) become ``-``; leading ``.``/``-`` are
    dropped; the result is cut at 128 characters.
    """
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", value).lstrip(".-")[:128]
    return value if value and TAG_RE.fullmatch(value) else None


def template_data(metadata: dict) -> dict:
    """The variables a tag template may use, as ``${name}`` or ``${a.b}``.

    ``commit``, ``short_sha`` (its first 7 characters), ``ref``, ``default_branch``, ``git_url``;
    ``name`` (the branch, tag or remote name), ``branch`` / ``tag`` / ``remote`` (only the one
    the ref is), the same under ``parsed_ref.`` (Quay's spelling), and ``commit_info.*``
    (``url``, ``message``, ``date``, ``short_sha``, ``author.username`` ...).
    """
    commit = metadata.get("commit") or ""
    data = {
        "commit": commit,
        "short_sha": commit[:7],
        "ref": metadata.get("ref"),
        "default_branch": metadata.get("default_branch"),
        "git_url": metadata.get("git_url"),
        "commit_info": {**(metadata.get("commit_info") or {}), "short_sha": commit[:7]},
        "parsed_ref": {},
    }
    parsed = ref_parse(metadata.get("ref"))
    if parsed is not None:
        data["name"] = parsed.name
        data[parsed.kind] = parsed.name
        data["parsed_ref"][parsed.kind] = parsed.name
    return data


def _lookup(data: dict, path: str):
    value = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def template_render(template: str, data: dict) -> str | None:
    """Fill ``${...}`` placeholders; None when one names a value this push does not have."""
    missing = False

    def substitute(match: re.Match) -> str:
        nonlocal missing
        value = _lookup(data, match.group(1))
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value) != "":
            return str(value)
        missing = True
        return ""

    result = TEMPLATE_VAR_RE.sub(substitute, template)
    return None if missing else result


def tags_for(config: dict, metadata: dict) -> list[str]:
    """The tags a build gets: template results, the ref's name, ``latest`` for the default branch.

    ``default_tag_from_ref`` and ``latest_for_default_branch`` are on unless the config turns
    them off. With nothing else, the commit's short SHA, so a build always has a tag.
    """
    tags: list[str] = []

    def add(value: str | None) -> None:
        tag = tag_normalize(value) if value else None
        if tag and tag not in tags:
            tags.append(tag)

    data = template_data(metadata)
    for template in config.get("tag_templates") or []:
        add(template_render(template, data))
    parsed = ref_parse(metadata.get("ref"))
    if parsed is not None:
        if config.get("default_tag_from_ref", True):
            add(parsed.name)
        if (
            config.get("latest_for_default_branch", True)
            and parsed.kind == "branch"
            and parsed.name == metadata.get("default_branch")
        ):
            add("latest")
    if not tags:
        add((metadata.get("commit") or "")[:7])
    return tags


# ---------------------------------------------------------------------------------------------
# Trigger config

# Quay's scp-like form ``user@host:path``: a host without ``/``, then ``:``.
# User and host start with a letter or digit: ``-oProxyCommand=...`` as a host is an old attack
# on git's ssh transport.
_SCP_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[^\s]+")
_URL_RE = re.compile(
    r"(ssh|git|http|https)://([A-Za-z0-9][A-Za-z0-9._~%-]*(:[^\s/@]*)?@)?"
    r"([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/\S+"
)


def git_url_check(url) -> str:
    """A clone URL the builder may use: ssh://, git://, http(s):// or ``user@host:path``.

    Local paths, ``file://`` and git's ``ext::`` transport (which runs a command) are refused,
    and so is a leading ``-`` that git would read as an option.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("build_source is required: the git URL the builder clones")
    url = url.strip()
    if len(url) > GIT_URL_MAX_LENGTH:
        raise ConfigError(f"build_source is longer than {GIT_URL_MAX_LENGTH} characters")
    if url.startswith("-") or not (_URL_RE.fullmatch(url) or _SCP_RE.fullmatch(url)):
        raise ConfigError(
            "build_source must be a git URL: ssh://[user@]host[:port]/path, user@host:path, "
            "git://host/path or http(s)://host/path"
        )
    return url


def _relative_path(value, key: str) -> str:
    """A path inside the git checkout: no leading ``/``, no ``..``; ``""`` is the root."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    if len(value) > PATH_MAX_LENGTH or "\x00" in value:
        raise ConfigError(f"{key} is not a usable path")
    stripped = value.strip().lstrip("/")
    if not stripped:
        return ""
    normalized = posixpath.normpath(stripped)
    if normalized == ".":
        return ""
    if normalized == ".." or normalized.startswith("../"):
        raise ConfigError(f"{key} must stay inside the git repository")
    return normalized


# A provider repository as its API names it: ``owner/name`` (GitLab also ``group/sub/name``).
_SOURCE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+")
SOURCE_NAME_MAX_LENGTH = 255


def source_name_check(value) -> str:
    """The ``build_source`` of a GitHub, GitLab or Bitbucket trigger: the repository's full name."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("build_source is required: the repository's full name, such as owner/name")
    value = value.strip().strip("/")
    if len(value) > SOURCE_NAME_MAX_LENGTH or not _SOURCE_NAME_RE.fullmatch(value) or ".." in value:
        raise ConfigError("build_source must be a repository's full name, such as owner/name")
    return value


def config_clean(config, *, source_check=git_url_check) -> dict:
    """Check and normalize a trigger config; returns the config to store.

    Keys: ``build_source`` (required; checked by ``source_check``: a git URL for custom git, a
    repository's full name for the providers), ``branchtag_regex``, ``context`` (the build context
    directory, default the repository root), ``dockerfile_path`` (default ``Dockerfile`` in the
    context), ``subdir`` (Quay's older single setting: context = subdir and the Dockerfile in
    it), ``tag_templates``, ``default_tag_from_ref``, ``latest_for_default_branch``. Unknown
    keys are refused so a typo does not silently do nothing.
    """
    if not isinstance(config, dict):
        raise ConfigError("config must be an object")
    known = {
        "build_source",
        "branchtag_regex",
        "context",
        "dockerfile_path",
        "subdir",
        "tag_templates",
        "default_tag_from_ref",
        "latest_for_default_branch",
    }
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    cleaned: dict = {"build_source": source_check(config.get("build_source"))}

    regex = config.get("branchtag_regex")
    if regex not in (None, ""):
        if not isinstance(regex, str) or len(regex) > REGEX_MAX_LENGTH:
            raise ConfigError(f"branchtag_regex must be a regular expression of at most {REGEX_MAX_LENGTH} characters")
        try:
            re.compile(regex)
        except re.error as exc:
            raise ConfigError(f"branchtag_regex is not a valid regular expression: {exc}") from None
        cleaned["branchtag_regex"] = regex

    subdir = _relative_path(config.get("subdir"), "subdir")
    context = _relative_path(config.get("context"), "context") if "context" in config else subdir
    default_dockerfile = posixpath.join(context, "Dockerfile") if context else "Dockerfile"
    dockerfile_path = _relative_path(config.get("dockerfile_path"), "dockerfile_path") or default_dockerfile
    if context and not dockerfile_path.startswith(context + "/"):
        raise ConfigError("dockerfile_path must be inside the build context")
    cleaned["context"] = context
    cleaned["dockerfile_path"] = dockerfile_path

    templates = config.get("tag_templates")
    if templates not in (None, []):
        if not isinstance(templates, list) or len(templates) > TEMPLATES_MAX:
            raise ConfigError(f"tag_templates must be a list of at most {TEMPLATES_MAX} strings")
        for template in templates:
            if not isinstance(template, str) or not template.strip() or len(template) > TEMPLATE_MAX_LENGTH:
                raise ConfigError(
                    f"each tag template must be a non-empty string of at most {TEMPLATE_MAX_LENGTH} characters"
                )
            leftover = TEMPLATE_VAR_RE.sub("", template)
            if "${" in leftover:
                raise ConfigError(f"tag template {template!r} has a malformed ${{...}} placeholder")
        cleaned["tag_templates"] = [template.strip() for template in templates]

    for flag in ("default_tag_from_ref", "latest_for_default_branch"):
        value = config.get(flag, True)
        if not isinstance(value, bool):
            raise ConfigError(f"{flag} must be true or false")
        cleaned[flag] = value
    return cleaned
