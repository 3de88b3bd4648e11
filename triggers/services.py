"""Writes about build triggers: create, activate, update, delete, fire, and the auto-disable.

A custom git trigger (guide chapter 3) is created and activated in one step by
``trigger_create_custom_git``: it gets an Ed25519 key pair (the public key is the deploy key the
admin installs on the git server; the private key is stored encrypted and given only to the
worker that clones for a build) and a webhook secret that pushes present. ``trigger_fire`` turns
a push (a validated payload) into a queued build, or into nothing when the push is skipped.

A GitHub, GitLab or Bitbucket trigger is connected to the admin's account at the provider
through OAuth (``trigger_connect_start`` / ``trigger_connect_finish``), set up with the pickers
(``trigger_source_namespaces``, ``trigger_sources``, ``trigger_field_values``) and activated by
``trigger_activate_provider``, which adds the deploy key and the push webhook at the provider.
``trigger_webhook_receive`` checks a provider delivery and fires the trigger.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import crypto
from accounts import selectors as account_selectors
from accounts.models import User
from builds import services as build_services
from builds.models import Build, Phase
from notifications.events import public_host
from registry import selectors as registry_selectors
from registry.errors import RegistryError
from registry.models import Repository, Role
from registry.permissions import ANONYMOUS, Principal, repository_role
from registry.usage import log_action
from triggers import dockerfile, providers, selectors
from triggers import metadata as md
from triggers.keys import ssh_keypair_generate
from triggers.metadata import ConfigError, PayloadError, payload_validate
from triggers.models import BuildTrigger, ProviderApp, TriggerDelivery
from triggers.providers import Provider, ProviderAuthError, ProviderError

log = logging.getLogger(__name__)

WEBHOOK_SECRET_LENGTH = 48
WEBHOOK_USERNAME = "$token"

# Usage log kinds, Quay's names.
LOG_SETUP = "setup_repo_trigger"
LOG_TOGGLE = "toggle_repo_trigger"
LOG_DELETE = "delete_repo_trigger"


class TriggerError(Exception):
    """A trigger request that cannot be done as asked; ``status`` is the HTTP answer."""

    status = 400
    error_type = "invalid_request"


class TriggerForbidden(TriggerError):
    status = 403
    error_type = "insufficient_scope"


class TriggerDisabled(TriggerError):
    def __init__(self):
        super().__init__("This build trigger is currently disabled. Please re-enable to continue.")


class TriggerNotActive(TriggerError):
    def __init__(self):
        super().__init__("This build trigger is not activated yet")


class RepositoryNotWritable(TriggerError):
    # Quay's answer while a repository is read-only or mirrored.
    status = 503
    error_type = "repository_not_writable"

    def __init__(self):
        super().__init__("The repository is currently read-only; builds cannot push to it")


class TriggerNotFound(TriggerError):
    status = 404
    error_type = "not_found"


class TriggerConflict(TriggerError):
    status = 409


class TriggerRemoteCleanupFailed(TriggerError):
    """The provider's deploy key or webhook could not be removed; the trigger was kept."""

    # The failure is the provider's (unreachable, refusing): a gateway error, not the caller's.
    status = 502
    error_type = "provider_error"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "Could not remove the trigger's deploy key or webhook at the git provider ("
            + "; ".join(problems)
            + "). The trigger was kept so that the removal can be retried; delete it with force=true "
            "to delete it anyway and remove them by hand."
        )


@dataclass(frozen=True)
class Credentials:
    """What View Credentials shows: the deploy key and the authenticated webhook URL."""

    public_key: str
    webhook_url: str


# ---------------------------------------------------------------------------------------------
# Helpers


def webhook_path(trigger: BuildTrigger) -> str:
    return f"/webhooks/push/trigger/{trigger.uuid}"


def webhook_url(trigger: BuildTrigger, secret: str) -> str:
    """Quay's form: the secret as the password of ``$token`` in the URL's credentials."""
    scheme = settings.PREFERRED_URL_SCHEME or "http"
    return f"{scheme}://{WEBHOOK_USERNAME}:{secret}@{public_host()}{webhook_path(trigger)}"


def webhook_secret_matches(trigger: BuildTrigger, secret: str | None) -> bool:
    if not secret or not trigger.webhook_secret_hash:
        return False
    return crypto.token_hash_matches(secret, trigger.webhook_secret_hash)


def credentials_of(trigger: BuildTrigger) -> Credentials | None:
    """The trigger's credentials for its admins, None before activation."""
    if not trigger.is_active or not trigger.webhook_secret_encrypted:
        return None
    if trigger.service in providers.SERVICES:
        # The provider holds the hook and its secret; the admin only needs to recognise the key.
        return Credentials(public_key=trigger.public_key, webhook_url="")
    return Credentials(
        public_key=trigger.public_key,
        webhook_url=webhook_url(trigger, crypto.decrypt(trigger.webhook_secret_encrypted)),
    )


def pull_robot_check(*, repository: Repository, robot: User | None, principal: Principal) -> None:
    """A pull robot must be a robot of the repository's own namespace, chosen by someone who
    administers that namespace (as in Quay: robots are the namespace admins' to hand out)."""
    if robot is None:
        return
    namespace = repository.namespace
    if not robot.is_robot or not robot.username.startswith(namespace.name + "+"):
        raise TriggerError(f"{robot.username} is not a robot account of {namespace.name}")
    if principal.user is None or not selectors.administers_namespace(user=principal.user, namespace=namespace):
        raise TriggerForbidden(f"Only administrators of {namespace.name} may use its robot accounts")


def _principal_log(kind: str, trigger: BuildTrigger, principal: Principal, ip: str | None, **extra) -> None:
    log_action(
        kind,
        principal=principal,
        repository=trigger.repository,
        ip=ip,
        metadata={
            "repo": trigger.repository.name,
            "namespace": trigger.repository.namespace.name,
            "trigger_id": str(trigger.uuid),
            "service": trigger.service,
            **extra,
        },
    )


# ---------------------------------------------------------------------------------------------
# Create, activate, update, delete


def trigger_create(*, repository: Repository, service: str, principal: Principal) -> BuildTrigger:
    """A new, not yet activated trigger (Quay's first step; activation gives it its config)."""
    if service not in BuildTrigger.Service.values:
        raise TriggerError(f"Unknown trigger service {service!r}; one of {', '.join(BuildTrigger.Service.values)}")
    if service in providers.SERVICES:
        _provider(service)  # the superuser must have set up and enabled its OAuth application
    return BuildTrigger.objects.create(repository=repository, service=service, connected_user=principal.user)


@transaction.atomic
def trigger_activate_custom_git(
    *,
    trigger: BuildTrigger,
    config: dict,
    pull_robot: User | None = None,
    principal: Principal,
    ip: str | None = None,
) -> tuple[BuildTrigger, str]:
    """Activate a custom git trigger: check its config, make its key pair and webhook secret.

    Returns the trigger and the webhook secret (also recoverable later by its admins).
    """
    if trigger.service != BuildTrigger.Service.CUSTOM_GIT:
        raise TriggerError("Only custom git triggers are activated with a config alone")
    trigger = BuildTrigger.objects.select_for_update().get(pk=trigger.pk)
    if trigger.is_active:
        raise TriggerError("Trigger config is not sufficient for activation: the trigger is already active")
    try:
        cleaned = md.config_clean(config)
    except ConfigError as exc:
        raise TriggerError(str(exc)) from None
    pull_robot_check(repository=trigger.repository, robot=pull_robot, principal=principal)
    repository = trigger.repository
    public_key, private_key = ssh_keypair_generate(f"quay-trigger-{trigger.uuid}@{repository.namespace.name}")
    secret = crypto.random_token(WEBHOOK_SECRET_LENGTH)
    trigger.config = cleaned
    trigger.pull_robot = pull_robot
    trigger.public_key = public_key
    trigger.private_key_encrypted = crypto.encrypt(private_key)
    trigger.webhook_secret_hash = crypto.token_hash(secret)
    trigger.webhook_secret_encrypted = crypto.encrypt(secret)
    trigger.activated = timezone.now()
    if trigger.connected_user_id is None:
        trigger.connected_user = principal.user
    trigger.save()
    _principal_log(
        LOG_SETUP,
        trigger,
        principal,
        ip,
        pull_robot=pull_robot.username if pull_robot else None,
        config=cleaned,
    )
    return trigger, secret


@transaction.atomic
def trigger_create_custom_git(
    *,
    repository: Repository,
    principal: Principal,
    build_source: str,
    pull_robot: User | None = None,
    config: dict | None = None,
    ip: str | None = None,
) -> tuple[BuildTrigger, str]:
    """Create and activate a custom git trigger; returns it and its webhook secret.

    ``config`` holds the other settings (``branchtag_regex``, ``context``, ``dockerfile_path``,
    ``subdir``, ``tag_templates``, ``default_tag_from_ref``, ``latest_for_default_branch``).
    """
    trigger = trigger_create(repository=repository, service=BuildTrigger.Service.CUSTOM_GIT, principal=principal)
    return trigger_activate_custom_git(
        trigger=trigger,
        config={**(config or {}), "build_source": build_source},
        pull_robot=pull_robot,
        principal=principal,
        ip=ip,
    )


@transaction.atomic
def trigger_update(
    *,
    trigger: BuildTrigger,
    principal: Principal,
    enabled: bool | None = None,
    config: dict | None = None,
    ip: str | None = None,
) -> BuildTrigger:
    """Turn a trigger on or off, and/or replace its config (checked as at activation).

    Enabling clears the disabled reason and the failure counters, so an auto-disabled trigger
    gets a fresh allowance.
    """
    trigger = BuildTrigger.objects.select_for_update().select_related("repository__namespace").get(pk=trigger.pk)
    if not trigger.is_active:
        raise TriggerError("Cannot update an unactivated trigger")
    if config is not None:
        cleaned = _config_clean(trigger, config)
        if trigger.service in providers.SERVICES and cleaned["build_source"] != trigger.config.get("build_source"):
            # The deploy key and hook live on the activated repository: a new one needs a new trigger.
            raise TriggerError("The build_source of an activated trigger cannot change; create a new trigger")
        trigger.config = cleaned
    if enabled is not None and enabled != trigger.enabled:
        trigger.enabled = enabled
        if enabled:
            trigger.disabled_reason = ""
            trigger.disabled_at = None
            trigger.successive_failure_count = 0
            trigger.successive_internal_error_count = 0
        else:
            trigger.disabled_reason = BuildTrigger.DisabledReason.USER_TOGGLED
            trigger.disabled_at = timezone.now()
        _principal_log(LOG_TOGGLE, trigger, principal, ip, enabled=enabled)
    trigger.save()
    return trigger


def trigger_delete(
    *, trigger: BuildTrigger, principal: Principal, ip: str | None = None, force: bool = False
) -> list[str]:
    """Remove a trigger; its key and secret go with it (builds keep their metadata).

    A provider trigger's deploy key and webhook are removed at the provider first. When that
    fails the trigger is kept, with ``remote`` still naming what is left, and
    TriggerRemoteCleanupFailed (502) is raised so the removal can be retried; with ``force``
    the trigger is deleted anyway and what is left at the provider is named in the usage log.
    Returns the problems met (empty when everything was removed).
    """
    problems: list[str] = []
    if trigger.service in providers.SERVICES and _remote_objects(trigger):
        problems = _remote_cleanup(trigger)
        if problems and not force:
            raise TriggerRemoteCleanupFailed(problems)
    with transaction.atomic():
        trigger = BuildTrigger.objects.select_for_update().select_related("repository__namespace").get(pk=trigger.pk)
        if trigger.is_active or problems:
            extra = {}
            if problems:
                extra = {"remote_leftovers": _remote_objects(trigger), "remote_errors": problems}
                log.warning("Trigger %s deleted with objects left at %s: %s", trigger.uuid, trigger.service, problems)
            _principal_log(LOG_DELETE, trigger, principal, ip, **extra)
        trigger.delete()
    return problems


# ---------------------------------------------------------------------------------------------
# Firing


def _prepare_check(trigger: BuildTrigger) -> None:
    if not trigger.is_active:
        raise TriggerNotActive()
    if not trigger.enabled:
        raise TriggerDisabled()
    if trigger.repository.state != Repository.State.NORMAL:
        raise RepositoryNotWritable()


def _queue(
    *,
    trigger: BuildTrigger,
    metadata: dict,
    tags: list[str],
    principal: Principal,
    git_ref: str | None,
    is_manual: bool = False,
) -> Build:
    config = trigger.config
    return build_services.build_create(
        repository=trigger.repository,
        principal=principal,
        tags=tags,
        context=config.get("context", ""),
        dockerfile_path=config.get("dockerfile_path") or "Dockerfile",
        pull_robot=trigger.pull_robot,
        display_name=metadata.get("commit", "")[:7] or (md.ref_parse(git_ref).name if git_ref else ""),
        trigger_uuid=trigger.uuid,
        trigger_metadata=metadata,
        git={"url": metadata["git_url"], "sha": metadata.get("commit", ""), "ref": git_ref or ""},
        is_manual=is_manual,
    )


def trigger_fire(*, trigger: BuildTrigger, payload) -> Build | None:
    """A push arrived: validate it, apply the skip rules, queue the build.

    Returns the Build, or None when the push is skipped (``[skip build]``/``[build skip]`` in the
    message, or a ref outside the trigger's branch/tag filter). Raises PayloadError for a bad
    payload, TriggerError for a disabled or inactive trigger, and the builds app's errors
    (``BuildQueueFull``: 429; ``BuildsDisabled``) when the build cannot be queued.
    """
    _prepare_check(trigger)
    metadata = payload_validate(payload)
    metadata["git_url"] = trigger.config["build_source"]
    return _fire(trigger, metadata)


def _fire(trigger: BuildTrigger, metadata: dict) -> Build | None:
    """The skip rules, then the build (the caller validated ``metadata``)."""
    if not md.ref_matches(trigger.config.get("branchtag_regex"), metadata["ref"]):
        log.info("Trigger %s: %s does not match the branch/tag filter; skipped", trigger.uuid, metadata["ref"])
        return None
    if md.commit_skipped(metadata):
        log.info("Trigger %s: commit %s asks to skip the build", trigger.uuid, metadata["commit"])
        return None
    tags = md.tags_for(trigger.config, metadata)
    # A push has no user behind it: the build is the trigger's (no manual_user, no started_by).
    return _queue(trigger=trigger, metadata=metadata, tags=tags, principal=ANONYMOUS, git_ref=metadata["ref"])


_SHA_RE = re.compile(r"[A-Fa-f0-9]{7,40}")
_REF_NAME_RE = re.compile(r"[A-Za-z0-9._/-]{1,255}")


def _ref_check(ref_kind, ref_name) -> None:
    if ref_kind not in ("branch", "tag"):
        raise TriggerError("refs.kind must be branch or tag")
    if (
        not isinstance(ref_name, str)
        or not _REF_NAME_RE.fullmatch(ref_name)
        or ref_name.startswith(("-", "/"))
        or ".." in ref_name
    ):
        raise TriggerError("refs.name is not a valid branch or tag name")


def trigger_run_now(
    *,
    trigger: BuildTrigger,
    principal: Principal,
    commit_sha: str | None = None,
    ref_kind: str | None = None,
    ref_name: str | None = None,
) -> Build:
    """Run Now: build a commit (``commit_sha``) or the head of a branch or tag.

    A custom git trigger cannot ask the git server what a branch points to, so for a branch or
    tag the build's ``git.sha`` is empty and the worker checks out ``git.ref`` as it clones.
    Run Now is explicit, so the skip rules and the ref filter do not apply.

    A provider trigger asks the provider what the branch, tag or commit is (its SHA and commit
    info); with neither, it builds the head of the repository's default branch.
    """
    _prepare_check(trigger)
    if trigger.service in providers.SERVICES:
        return _provider_run_now(
            trigger=trigger, principal=principal, commit_sha=commit_sha, ref_kind=ref_kind, ref_name=ref_name
        )
    config = trigger.config
    if commit_sha:
        if not isinstance(commit_sha, str) or not _SHA_RE.fullmatch(commit_sha):
            raise TriggerError("commit_sha must be 7 to 40 hexadecimal characters")
        metadata = {"commit": commit_sha, "git_url": config["build_source"]}
        git_ref = None
    elif ref_name:
        _ref_check(ref_kind, ref_name)
        git_ref = f"refs/{'tags' if ref_kind == 'tag' else 'heads'}/{ref_name}"
        # No commit yet: the worker resolves the ref when it clones.
        metadata = {"ref": git_ref, "git_url": config["build_source"]}
    else:
        raise TriggerError("missing required parameter: commit_sha, or refs with kind and name")
    tags = md.tags_for(config, metadata)
    return _queue(trigger=trigger, metadata=metadata, tags=tags, principal=principal, git_ref=git_ref, is_manual=True)


# ---------------------------------------------------------------------------------------------
# Auto-disable


def _threshold(name: str, default: int) -> int:
    return int(getattr(settings, name, default) or 0)


@transaction.atomic
def trigger_build_finished(build: Build) -> BuildTrigger | None:
    """Count a finished trigger build; disable the trigger after too many failures in a row.

    Called by the build manager when a build reaches a final phase. ``complete`` resets both
    counters; ``error`` adds a failure (and resets the internal error count); ``internalerror``
    adds an internal error. At ``TRIGGER_DISABLE_AFTER_FAILURES`` (100) successive failures or
    ``TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS`` (5) successive internal errors the trigger is
    disabled with the reason. Returns the trigger, or None for a build without one.
    """
    if not build.trigger_uuid:
        return None
    trigger = BuildTrigger.objects.select_for_update().filter(uuid=build.trigger_uuid).first()
    if trigger is None:
        return None
    if build.phase == Phase.COMPLETE:
        trigger.successive_failure_count = 0
        trigger.successive_internal_error_count = 0
    elif build.phase == Phase.ERROR:
        trigger.successive_failure_count += 1
        trigger.successive_internal_error_count = 0
    elif build.phase in (Phase.INTERNAL_ERROR, Phase.EXPIRED):
        trigger.successive_internal_error_count += 1
    else:
        # Cancelled (or not final): says nothing about the trigger's health.
        return trigger
    failures = _threshold("TRIGGER_DISABLE_AFTER_FAILURES", 100)
    internal = _threshold("TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS", 5)
    reason = ""
    if failures and trigger.successive_failure_count >= failures:
        reason = BuildTrigger.DisabledReason.BUILD_FAILURES
    elif internal and trigger.successive_internal_error_count >= internal:
        reason = BuildTrigger.DisabledReason.INTERNAL_ERRORS
    if reason and trigger.enabled:
        trigger.enabled = False
        trigger.disabled_reason = reason
        trigger.disabled_at = timezone.now()
        log.warning("Trigger %s disabled: %s", trigger.uuid, reason)
    trigger.save()
    return trigger


# ---------------------------------------------------------------------------------------------
# Provider OAuth applications (the superuser's settings)

PROVIDER_PATHS = {service: f"/oauth2/{service}/callback" for service in providers.SERVICES}


@transaction.atomic
def provider_app_set(
    *,
    service: str,
    enabled: bool,
    client_id: str,
    client_secret: str | None = None,
    web_url: str = "",
    api_url: str = "",
) -> ProviderApp:
    """Create or change a provider's OAuth application; ``client_secret`` None keeps the stored one.

    Enabling needs a client id and a secret. URLs must be http(s) (checked against the outbound
    guard's rules, without resolving: a self-hosted GitLab may only resolve inside the network).
    """
    from quay_site import outbound

    if service not in providers.SERVICES:
        raise TriggerError(f"Unknown provider {service!r}; one of {', '.join(providers.SERVICES)}")
    app = ProviderApp.objects.select_for_update().filter(service=service).first() or ProviderApp(service=service)
    for name, value in (("web_url", web_url), ("api_url", api_url)):
        value = (value or "").strip().rstrip("/")
        if value:
            try:
                outbound.check_url(value)
            except outbound.DestinationRefused as exc:
                raise TriggerError(f"{name}: {exc}") from None
        setattr(app, name, value)
    app.client_id = (client_id or "").strip()
    if client_secret:
        app.client_secret_encrypted = crypto.encrypt(client_secret.strip())
    app.enabled = bool(enabled)
    if app.enabled and not (app.client_id and app.client_secret_encrypted):
        raise TriggerError("An enabled provider needs its OAuth client id and client secret")
    app.save()
    return app


def oauth_redirect_uri(service: str) -> str:
    """The callback URL to register with the provider's OAuth application (guide chapter 9)."""
    scheme = settings.PREFERRED_URL_SCHEME or "http"
    return f"{scheme}://{public_host()}{PROVIDER_PATHS[service]}"


def provider_webhook_path(trigger: BuildTrigger) -> str:
    return f"/webhooks/{trigger.service}/trigger/{trigger.uuid}"


def provider_webhook_url(trigger: BuildTrigger) -> str:
    scheme = settings.PREFERRED_URL_SCHEME or "http"
    return f"{scheme}://{public_host()}{provider_webhook_path(trigger)}"


def _provider(service: str) -> Provider:
    try:
        return providers.provider_for(service)
    except ProviderError as exc:
        raise TriggerError(str(exc)) from None


def _is_provider_trigger(trigger: BuildTrigger) -> None:
    if trigger.service not in providers.SERVICES:
        raise TriggerError("This is not a GitHub, GitLab or Bitbucket trigger")


def _config_clean(trigger: BuildTrigger, config) -> dict:
    check = md.source_name_check if trigger.service in providers.SERVICES else md.git_url_check
    try:
        return md.config_clean(config, source_check=check)
    except ConfigError as exc:
        raise TriggerError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# Connecting an account (OAuth web flow)

STATE_SALT = "triggers.oauth-state"
STATE_MAX_AGE = 600  # seconds from the start to the callback


_RETURN_TO_RE = re.compile(r"/(?![/\\])[^\s\\]*")


def trigger_connect_start(*, trigger: BuildTrigger, principal: Principal, return_to: str | None = None) -> str:
    """Begin connecting ``principal``'s provider account to the trigger; the URL to send them to.

    The ``state`` is signed, names the trigger, the user and the service, expires after
    STATE_MAX_AGE seconds, and carries a nonce whose hash is kept on the trigger: only the latest
    start's state works, and only once. ``return_to`` is a path on this site where the callback
    sends the browser once connected (not another site: ``//host`` and ``\\`` are refused).
    """
    _is_provider_trigger(trigger)
    if principal.user is None or principal.user.is_robot:
        raise TriggerForbidden("Connecting an account needs a signed-in user")
    if return_to is not None and (len(return_to) > 1024 or not _RETURN_TO_RE.fullmatch(return_to)):
        raise TriggerError("return_to must be a path on this site, starting with a single /")
    provider = _provider(trigger.service)
    nonce = crypto.random_token(32)
    BuildTrigger.objects.filter(pk=trigger.pk).update(connect_nonce_hash=crypto.token_hash(nonce))
    data = {"t": str(trigger.uuid), "u": principal.user.pk, "s": trigger.service, "n": nonce}
    if return_to:
        data["r"] = return_to
    state = signing.dumps(data, salt=STATE_SALT)
    return provider.authorize_url(state=state, redirect_uri=oauth_redirect_uri(trigger.service))


def _administers(user: User, repository: Repository) -> bool:
    if user.is_superuser:
        return True
    return repository_role(Principal(kind="user", user=user), repository) == Role.ADMIN


def trigger_connect_finish(
    *, service: str, state: str, code: str, session_user: User | None = None
) -> tuple[BuildTrigger, str]:
    """The provider sent the user back: check the state, trade the code for a token, keep it.
    Returns the trigger and the ``return_to`` path given at the start ("" for none).

    ``session_user`` is the signed-in user of the browser that came back, if any: it must be
    the user who started. Raises TriggerError (400) for an expired, forged or used state or a
    refused code, TriggerForbidden when the user may no longer administer the repository.
    """
    try:
        data = signing.loads(state or "", salt=STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.SignatureExpired:
        raise TriggerError("The connection took too long; start again from the trigger setup") from None
    except signing.BadSignature:
        raise TriggerError("The connection request is not valid; start again from the trigger setup") from None
    if not isinstance(data, dict) or data.get("s") != service:
        raise TriggerError("The connection request is not for this provider")
    trigger = selectors.trigger_by_uuid(trigger_uuid=data.get("t"))
    if trigger is None:
        raise TriggerNotFound("The build trigger no longer exists")
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or (session_user is not None and session_user.pk != user.pk):
        raise TriggerForbidden("The connection was started by another user")
    if not _administers(user, trigger.repository):
        raise TriggerForbidden("You no longer administer this repository")
    if not code:
        raise TriggerError("The provider sent no authorization code")
    nonce_hash = crypto.token_hash(str(data.get("n") or ""))
    # Used up before the exchange: a second callback with the same state finds nothing to claim.
    claimed = BuildTrigger.objects.filter(pk=trigger.pk, connect_nonce_hash=nonce_hash).update(connect_nonce_hash="")
    if not claimed:
        raise TriggerError("This connection request was already used or replaced; start again")
    provider = _provider(service)
    try:
        token = provider.token_exchange(code=code, redirect_uri=oauth_redirect_uri(service))
    except ProviderError as exc:
        raise TriggerError(str(exc)) from None
    _token_store(trigger, token, connected_user=user)
    trigger.refresh_from_db()
    # Where the browser goes next (checked when the state was made, and signed since).
    return trigger, data.get("r") or ""


def _token_store(trigger: BuildTrigger, token: providers.Token, *, connected_user: User | None = None) -> None:
    values = {
        "auth_token_encrypted": crypto.encrypt(token.access_token),
        "auth_token_expires": timezone.now() + timedelta(seconds=token.expires_in) if token.expires_in else None,
    }
    if token.refresh_token:
        values["auth_refresh_token_encrypted"] = crypto.encrypt(token.refresh_token)
    if connected_user is not None:
        values["connected_user"] = connected_user
    BuildTrigger.objects.filter(pk=trigger.pk).update(**values)
    for name, value in values.items():
        setattr(trigger, name, value)


def _access_token(trigger: BuildTrigger, provider: Provider, *, refresh: bool = False) -> str:
    if not trigger.auth_token_encrypted:
        raise TriggerError(f"Connect a {provider.title} account to the trigger first")
    soon = timezone.now() + timedelta(seconds=60)
    expired = trigger.auth_token_expires is not None and trigger.auth_token_expires <= soon
    if (refresh or expired) and trigger.auth_refresh_token_encrypted:
        try:
            token = provider.token_refresh(
                refresh_token=crypto.decrypt(trigger.auth_refresh_token_encrypted),
                redirect_uri=oauth_redirect_uri(trigger.service),
            )
        except ProviderError as exc:
            raise TriggerError(f"The {provider.title} authorization could not be renewed: {exc}") from None
        _token_store(trigger, token)
    return crypto.decrypt(trigger.auth_token_encrypted)


def _with_token(trigger: BuildTrigger, provider: Provider, call):
    """``call(token)``, renewing an expired token first and once more after a 401."""
    try:
        return call(_access_token(trigger, provider))
    except ProviderAuthError:
        if not trigger.auth_refresh_token_encrypted:
            raise
    return call(_access_token(trigger, provider, refresh=True))


def _connected_check(trigger: BuildTrigger, principal: Principal) -> None:
    """Only the user whose provider account is connected may browse it and activate with it (as in
    Quay: another admin of the repository must not list someone else's private repositories)."""
    _is_provider_trigger(trigger)
    if not trigger.auth_token_encrypted or trigger.connected_user_id is None:
        raise TriggerError("Connect an account to the trigger first")
    if principal.user is None or principal.user.pk != trigger.connected_user_id:
        raise TriggerForbidden("Only the user who connected the trigger's account may do this")


def _provider_call(trigger: BuildTrigger, principal: Principal, call):
    _connected_check(trigger, principal)
    provider = _provider(trigger.service)
    try:
        return _with_token(trigger, provider, lambda token: call(provider, token))
    except ProviderError as exc:
        raise TriggerError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# The setup pickers

FIELD_VALUE_LIMIT = 30


def trigger_source_namespaces(*, trigger: BuildTrigger, principal: Principal) -> list[dict]:
    """The connected account's namespaces (itself, its organizations, groups or workspaces)."""
    return _provider_call(trigger, principal, lambda provider, token: provider.namespaces(token))


def trigger_sources(*, trigger: BuildTrigger, principal: Principal, namespace: str) -> list[dict]:
    """The repositories of one namespace, as Quay lists build sources."""
    if not isinstance(namespace, str) or not namespace.strip() or len(namespace) > 255:
        raise TriggerError("namespace is required")
    return _provider_call(trigger, principal, lambda provider, token: provider.sources(token, namespace.strip()))


def trigger_field_values(
    *, trigger: BuildTrigger, principal: Principal, field_name: str, config: dict | None = None
) -> list | None:
    """Values for a setup or Run Now field: ``refs`` (``{kind, name}`` of branches, then tags),
    ``branch_name`` (the default branch first) or ``tag_name``. None for an unknown field."""
    if field_name not in ("refs", "branch_name", "tag_name"):
        return None
    source = (config or {}).get("build_source") or trigger.config.get("build_source")
    if not source:
        return []
    try:
        source = md.source_name_check(source)
    except ConfigError as exc:
        raise TriggerError(str(exc)) from None
    default = trigger.remote.get("default_branch") if source == trigger.config.get("build_source") else None

    def branches(provider, token):
        names = provider.branches(token, source)
        if default in names:
            names = [default] + [name for name in names if name != default]
        return names[:FIELD_VALUE_LIMIT]

    def values(provider, token):
        if field_name == "branch_name":
            return branches(provider, token)
        tags = provider.tags(token, source)[:FIELD_VALUE_LIMIT]
        if field_name == "tag_name":
            return tags
        return [{"kind": "branch", "name": name} for name in branches(provider, token)] + [
            {"kind": "tag", "name": name} for name in tags
        ]

    return _provider_call(trigger, principal, values)


# ---------------------------------------------------------------------------------------------
# Activation and removal at the provider

REMOTE_OBJECTS = ("deploy_key_id", "hook_id")
ACTIVATION_CLAIM_SECONDS = 300


def _remote_objects(trigger: BuildTrigger) -> dict:
    return {key: trigger.remote[key] for key in REMOTE_OBJECTS if trigger.remote.get(key)}


def _remote_save(trigger: BuildTrigger, **changes) -> None:
    """Record at once (committed) what exists at the provider, so that no failure later loses it."""
    with transaction.atomic():
        row = BuildTrigger.objects.select_for_update().get(pk=trigger.pk)
        remote = dict(row.remote)
        for key, value in changes.items():
            if value is None:
                remote.pop(key, None)
            else:
                remote[key] = value
        row.remote = remote
        row.save(update_fields=["remote"])
    trigger.remote = remote


def _remote_cleanup(trigger: BuildTrigger) -> list[str]:
    """Remove the trigger's hook and deploy key at the provider; forget each one removed (gone
    already counts as removed). Returns the problems, empty when all is clean."""
    leftovers = _remote_objects(trigger)
    source = trigger.remote.get("source") or trigger.config.get("build_source")
    if not leftovers:
        return []
    if not source:
        return ["the trigger does not know which repository it was set up on"]
    try:
        provider = providers.provider_for(trigger.service)
    except ProviderError as exc:
        return [str(exc)]
    problems = []
    # The hook first: without it no more pushes arrive, which matters more than the key.
    for key, remove in (("hook_id", provider.hook_remove), ("deploy_key_id", provider.deploy_key_remove)):
        if key not in leftovers:
            continue
        try:
            _with_token(trigger, provider, lambda token, remove=remove, key=key: remove(token, source, leftovers[key]))
        except (ProviderError, TriggerError) as exc:
            problems.append(f"{key.replace('_id', '').replace('_', ' ')} {leftovers[key]}: {exc}")
            continue
        _remote_save(trigger, **{key: None})
    return problems


def _activation_claim(trigger: BuildTrigger) -> BuildTrigger:
    """Mark the trigger as being activated, so a second request at the same time is refused
    instead of adding a second key and hook."""
    with transaction.atomic():
        row = BuildTrigger.objects.select_for_update().select_related("repository__namespace").get(pk=trigger.pk)
        if row.is_active:
            raise TriggerError("Trigger config is not sufficient for activation: the trigger is already active")
        started = row.remote.get("activating")
        if started:
            age = (timezone.now() - datetime.fromisoformat(started)).total_seconds()
            if age < ACTIVATION_CLAIM_SECONDS:
                raise TriggerConflict("The trigger is being activated by another request")
        row.remote = {**row.remote, "activating": timezone.now().isoformat()}
        row.save(update_fields=["remote"])
    return row


def trigger_activate_provider(
    *,
    trigger: BuildTrigger,
    config: dict,
    principal: Principal,
    pull_robot: User | None = None,
    ip: str | None = None,
) -> BuildTrigger:
    """Activate a GitHub, GitLab or Bitbucket trigger on the repository ``config["build_source"]``
    (its full name, such as ``owner/name``).

    Makes the key pair and the webhook secret, adds the public key as a read-only deploy key and
    a push webhook (signed with the secret) at the provider, and keeps what the provider said
    about the repository (SSH clone URL, web page, default branch) in ``remote``. Each remote
    object is recorded as soon as it exists; if a later step fails, what was added is removed
    again (and, should that fail too, stays recorded for the trigger's deletion to remove).
    """
    _is_provider_trigger(trigger)
    _connected_check(trigger, principal)
    if trigger.is_active:
        raise TriggerError("Trigger config is not sufficient for activation: the trigger is already active")
    cleaned = _config_clean(trigger, config)
    pull_robot_check(repository=trigger.repository, robot=pull_robot, principal=principal)
    provider = _provider(trigger.service)
    trigger = _activation_claim(trigger)
    source = cleaned["build_source"]
    try:
        problems = _remote_cleanup(trigger)  # leftovers of an earlier attempt
        if problems:
            raise TriggerError("Objects of an earlier activation could not be removed: " + "; ".join(problems))
        try:
            info = _with_token(trigger, provider, lambda token: provider.repository(token, source))
        except ProviderError as exc:
            raise TriggerError(f"Unable to find {provider.title} repository {source}: {exc}") from None
        repository = trigger.repository
        public_key, private_key = ssh_keypair_generate(f"quay-trigger-{trigger.uuid}@{repository.namespace.name}")
        secret = crypto.random_token(WEBHOOK_SECRET_LENGTH)
        _remote_save(trigger, source=info.full_name)
        title = f"Quay builder ({repository.namespace.name}/{repository.name})"
        try:
            key_id = _with_token(
                trigger,
                provider,
                lambda token: provider.deploy_key_add(token, info.full_name, title=title, public_key=public_key),
            )
        except ProviderError as exc:
            raise TriggerError(f"Unable to add the deploy key to {info.full_name}: {exc}") from None
        _remote_save(trigger, deploy_key_id=key_id)
        # The secret is stored before the hook exists, so that the provider's first delivery
        # (GitHub's ping, sent as the hook is created) can already be verified.
        BuildTrigger.objects.filter(pk=trigger.pk).update(
            webhook_secret_hash=crypto.token_hash(secret), webhook_secret_encrypted=crypto.encrypt(secret)
        )
        try:
            hook_id = _with_token(
                trigger,
                provider,
                lambda token: provider.hook_add(
                    token, info.full_name, url=provider_webhook_url(trigger), secret=secret
                ),
            )
        except ProviderError as exc:
            _remote_cleanup(trigger)
            raise TriggerError(f"Unable to create the webhook on {info.full_name}: {exc}") from None
        _remote_save(trigger, hook_id=hook_id)
        with transaction.atomic():
            row = BuildTrigger.objects.select_for_update().select_related("repository__namespace").get(pk=trigger.pk)
            cleaned["build_source"] = info.full_name
            row.config = cleaned
            row.pull_robot = pull_robot
            row.public_key = public_key
            row.private_key_encrypted = crypto.encrypt(private_key)
            row.webhook_secret_hash = crypto.token_hash(secret)
            row.webhook_secret_encrypted = crypto.encrypt(secret)
            row.activated = timezone.now()
            remote = {key: value for key, value in row.remote.items() if key != "activating"}
            remote.update(
                git_url=info.git_url,
                html_url=info.html_url,
                default_branch=info.default_branch,
                project_id=info.project_id,
            )
            row.remote = remote
            row.save()
            _principal_log(
                LOG_SETUP,
                row,
                principal,
                ip,
                pull_robot=pull_robot.username if pull_robot else None,
                config=cleaned,
            )
        return row
    finally:
        if not BuildTrigger.objects.filter(pk=trigger.pk, activated__isnull=False).exists():
            _remote_save(trigger, activating=None)


# ---------------------------------------------------------------------------------------------
# Provider webhook deliveries


@dataclass
class DeliveryResult:
    """What a provider delivery came to: a build, or the reason there is none."""

    build: Build | None = None
    skipped_reason: str = ""
    duplicate: bool = False
    extra: dict = field(default_factory=dict)


def _delivery_retention() -> timedelta:
    return timedelta(days=int(getattr(settings, "TRIGGER_DELIVERY_RETENTION_DAYS", 14) or 14))


def trigger_webhook_receive(*, trigger: BuildTrigger, service: str, meta: dict, body: bytes) -> DeliveryResult:
    """A webhook delivery from the trigger's provider (``meta`` is the request's META).

    Checks, in order: the service, the provider's signature or token (with the trigger's secret,
    constant time), the delivery id, the event kind (a ``ping`` or another event builds
    nothing), the trigger's state (active, enabled), the payload. A delivery id seen before for this trigger builds
    nothing again (``duplicate``). A deleted branch or tag, a ``[skip build]`` commit or a ref
    outside the filter is skipped. Raises TriggerNotFound, TriggerForbidden (bad signature),
    PayloadError, TriggerError and the builds app's errors (queue full).
    """
    if trigger.service != service or service not in providers.SERVICES:
        raise TriggerNotFound("No such build trigger")
    if not trigger.webhook_secret_encrypted:
        raise TriggerNotActive()
    provider = _provider(service)
    secret = crypto.decrypt(trigger.webhook_secret_encrypted)
    if not provider.signature_valid(meta=meta, body=body, secret=secret):
        raise TriggerForbidden("Missing or wrong webhook signature")
    delivery_id = provider.delivery_id(meta)
    if not delivery_id:
        raise PayloadError(f"the {provider.delivery_header[5:].replace('_', '-')} header is required")
    kind = provider.event_kind(meta)
    if kind != "push":
        # Also before activation has finished: GitHub pings a hook the moment it is created.
        return DeliveryResult(
            skipped_reason="ping" if kind == "ping" else f"event {provider.event_name(meta)!r} ignored"
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the payload is not valid JSON: {exc}") from None
    _prepare_check(trigger)  # active, enabled, repository writable

    def lookup_commit(sha: str) -> dict | None:
        try:
            source = trigger.config["build_source"]
            return _with_token(
                trigger, provider, lambda token: provider.commit_metadata(token, source, revision=sha, kind=None)
            )
        except (ProviderError, TriggerError) as exc:
            log.info("Trigger %s: no commit info for %s: %s", trigger.uuid, sha, exc)
            return None

    mapped = provider.push_metadata(payload, remote=trigger.remote, lookup_commit=lookup_commit)
    if mapped is None:
        return DeliveryResult(skipped_reason="deleted ref")
    metadata = payload_validate(mapped)
    # The clone URL is the one activation added the deploy key for, not whatever a payload says.
    metadata["git_url"] = trigger.remote.get("git_url") or mapped.get("git_url") or ""
    if not metadata["git_url"]:
        raise PayloadError("the payload names no clone URL")
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                delivery = TriggerDelivery.objects.create(
                    trigger=trigger, delivery_id=delivery_id, event=provider.event_name(meta)
                )
        except IntegrityError:
            return DeliveryResult(skipped_reason="duplicate delivery", duplicate=True)
        # Queued or skipped, the delivery is recorded with the outcome; a failure to queue rolls
        # the record back, so the provider's retry of the same delivery is taken.
        build = _fire(trigger, metadata)
        if build is not None:
            delivery.build_uuid = build.uuid
            delivery.save(update_fields=["build_uuid"])
    TriggerDelivery.objects.filter(trigger=trigger, received__lt=now - _delivery_retention()).delete()
    return DeliveryResult(build=build, skipped_reason="" if build is not None else "skipped by the trigger's rules")


# ---------------------------------------------------------------------------------------------
# Run Now for provider triggers


def _provider_run_now(
    *,
    trigger: BuildTrigger,
    principal: Principal,
    commit_sha: str | None,
    ref_kind: str | None,
    ref_name: str | None,
) -> Build:
    source = trigger.config["build_source"]
    default_branch = trigger.remote.get("default_branch") or ""
    if commit_sha:
        if not isinstance(commit_sha, str) or not _SHA_RE.fullmatch(commit_sha):
            raise TriggerError("commit_sha must be 7 to 40 hexadecimal characters")
        revision, kind, git_ref = commit_sha, None, None
    elif ref_name:
        _ref_check(ref_kind, ref_name)
        revision, kind = ref_name, ref_kind
        git_ref = f"refs/{'tags' if ref_kind == 'tag' else 'heads'}/{ref_name}"
    elif default_branch:
        revision, kind, git_ref = default_branch, "branch", f"refs/heads/{default_branch}"
    else:
        raise TriggerError("missing required parameter: refs with kind and name, or commit_sha")
    provider = _provider(trigger.service)
    try:
        found = _with_token(
            trigger, provider, lambda token: provider.commit_metadata(token, source, revision=revision, kind=kind)
        )
    except ProviderError as exc:
        what = f"{kind} {revision}" if kind else f"commit {revision}"
        raise TriggerError(f"Could not find {what} in {source}: {exc}") from None
    if not found.get("commit") or not md.COMMIT_RE.fullmatch(found["commit"]):
        raise TriggerError(f"{provider.title} did not say which commit {revision} is")
    metadata = {
        "commit": found["commit"],
        "default_branch": default_branch,
        "git_url": trigger.remote.get("git_url", ""),
    }
    if git_ref:
        metadata["ref"] = git_ref
    if found.get("commit_info"):
        metadata["commit_info"] = found["commit_info"]
    tags = md.tags_for(trigger.config, metadata)
    return _queue(trigger=trigger, metadata=metadata, tags=tags, principal=principal, git_ref=git_ref)


# ---------------------------------------------------------------------------------------------
# Analyze and subdir: what the setup learns from the repository's Dockerfiles (Quay's verbs)

CUSTOM_GIT_ANALYZE_MESSAGE = (
    "A custom git trigger has no provider API through which the registry could read the Dockerfile: "
    "if its base image is a private repository of this registry, choose a robot account that can pull it"
)
CUSTOM_GIT_SUBDIR_MESSAGE = (
    "A custom git trigger has no provider API through which the registry could list the repository's "
    "Dockerfiles: enter the Dockerfile path and the build context by hand"
)


def _source_read(trigger: BuildTrigger, principal: Principal, source: str, call):
    """``call(provider, token)`` against ``source``. Reading the trigger's own repository is
    open to any admin of the registry repository; any other repository of the connected account
    only to the user who connected it (as for the pickers)."""
    if trigger.is_active and source == trigger.config.get("build_source"):
        _is_provider_trigger(trigger)
    else:
        _connected_check(trigger, principal)
    provider = _provider(trigger.service)
    try:
        return _with_token(trigger, provider, lambda token: call(provider, token))
    except ProviderError as exc:
        raise TriggerError(str(exc)) from None


def _analysis(
    trigger: BuildTrigger,
    principal: Principal,
    status: str,
    *,
    message: str | None = None,
    namespace: str | None = None,
    base: Repository | None = None,
) -> dict:
    """Quay's analyze answer. The robots of the trigger's namespace (with whether each can pull
    the base image) are listed to namespace admins when the base image lives in that namespace or
    the status says nothing about one, so they can pick the trigger's pull robot."""
    own = trigger.repository.namespace
    namespace = own.name if namespace is None else namespace
    is_admin = principal.user is not None and selectors.administers_namespace(user=principal.user, namespace=own)
    robots = []
    if is_admin and namespace == own.name:
        for robot in account_selectors.robots_of(namespace=own):
            can_read = base is not None and repository_role(Principal(kind="robot", user=robot.user), base) is not None
            robots.append({"name": robot.user.username, "kind": "user", "is_robot": True, "can_read": can_read})
    return {
        "namespace": namespace,
        "name": base.name if base is not None else None,
        "robots": robots,
        "status": status,
        "message": message,
        "is_admin": is_admin,
    }


def trigger_analyze(*, trigger: BuildTrigger, principal: Principal, config) -> dict:
    """Read the Dockerfile a trigger config names (on the source repository's default branch)
    and say what its base image needs: ``publicbase`` (nothing: public, or not in this
    registry), ``requiresrobot`` (a private repository here: pick a robot that can read it),
    ``warning`` (no Dockerfile at that path, no FROM line, not a repository path) or ``error``
    (bad config, unreadable repository, base repository not found or not visible to the caller).
    ``notimplemented`` for custom git, which has no API to read from. Raises TriggerForbidden
    when the caller may not read the repository the config names."""
    if trigger.service == BuildTrigger.Service.CUSTOM_GIT:
        return _analysis(trigger, principal, "notimplemented", message=CUSTOM_GIT_ANALYZE_MESSAGE)
    try:
        cleaned = _config_clean(trigger, config)
    except TriggerError as exc:
        return _analysis(trigger, principal, "error", message=str(exc))
    source, path = cleaned["build_source"], cleaned["dockerfile_path"]

    def load(provider: Provider, token: str) -> tuple[str, str | None]:
        branch = provider.repository(token, source).default_branch
        return branch, provider.dockerfile_load(token, source, path=path, ref=branch)

    try:
        branch, contents = _source_read(trigger, principal, source, load)
    except TriggerForbidden:
        raise
    except TriggerError as exc:
        return _analysis(trigger, principal, "error", message=f"Could not analyze the repository: {exc}")
    if not contents or not contents.strip():
        return _analysis(
            trigger,
            principal,
            "warning",
            message=f"No Dockerfile was found at {path} on the default branch ({branch}): builds of this trigger "
            "will fail until there is one",
        )
    image = dockerfile.base_image(contents)
    if not image:
        return _analysis(trigger, principal, "warning", message=f"The Dockerfile at {path} has no FROM line")
    prefix = f"{public_host()}/"
    if not image.startswith(prefix):
        return _analysis(trigger, principal, "publicbase")  # pulled from elsewhere: no robot of ours helps
    parts = image[len(prefix) :].split("/")
    if len(parts) != 2 or not all(parts):
        return _analysis(trigger, principal, "warning", message=f'"{image}" is not a repository path of this registry')
    try:
        base = registry_selectors.repository_by_name("/".join(parts))
    except RegistryError:
        base = None
    not_found = f'The repository "{image}" that the Dockerfile builds on was not found'
    if base is None:
        return _analysis(trigger, principal, "error", message=not_found)
    if base.is_public:
        return _analysis(trigger, principal, "publicbase", namespace=parts[0], base=base)
    # A private base image is only confirmed within the trigger's own namespace and to someone
    # who can see it; anything else reads as "not found", so the answer reveals nothing.
    if parts[0] != trigger.repository.namespace.name or repository_role(principal, base) is None:
        return _analysis(trigger, principal, "error", message=not_found)
    return _analysis(trigger, principal, "requiresrobot", namespace=parts[0], base=base)


def _context_choices(dockerfile_path: str) -> list[str]:
    """The directories that may be the build context of ``/a/b/Dockerfile``: ``/a/b``, ``/a``, ``/``."""
    directory = posixpath.dirname(dockerfile_path) or "/"
    found = [directory]
    while directory != "/":
        directory = posixpath.dirname(directory)
        found.append(directory)
    return found


def trigger_dockerfile_paths(*, trigger: BuildTrigger, principal: Principal, config=None) -> dict:
    """Quay's subdir answer: ``{status: "success", dockerfile_paths: ["/a/Dockerfile", ...],
    contextMap: {"/a/Dockerfile": ["/a", "/"]}}`` for the default branch of the config's
    ``build_source`` (default: the trigger's own), or ``{status: "error", message}`` when the
    provider cannot be read and for custom git. Raises TriggerForbidden as trigger_analyze."""
    if trigger.service == BuildTrigger.Service.CUSTOM_GIT:
        return {"status": "error", "message": CUSTOM_GIT_SUBDIR_MESSAGE}
    source = (config or {}).get("build_source") or trigger.config.get("build_source")
    try:
        source = md.source_name_check(source)
    except ConfigError as exc:
        return {"status": "error", "message": str(exc)}

    def listing(provider: Provider, token: str) -> list[str]:
        branch = provider.repository(token, source).default_branch
        return provider.dockerfile_paths(token, source, ref=branch)

    try:
        paths = _source_read(trigger, principal, source, listing)
    except TriggerForbidden:
        raise
    except TriggerError as exc:
        return {"status": "error", "message": str(exc)}
    absolute = ["/" + path for path in paths]
    return {
        "status": "success",
        "dockerfile_paths": absolute,
        "contextMap": {path: _context_choices(path) for path in absolute},
    }
