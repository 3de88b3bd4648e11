"""The cast and the objects the permission matrix addresses, and how each caller calls.

Organization ``acme`` has the private repository ``acme/app`` (tag ``latest`` on an image),
teams ``owners`` (admin role: alice), ``readers``/``writers``/``repoadmins`` (member role; read,
write and admin on acme/app), ``members`` (member role, no permission) and ``builders`` (creator
role), the robot ``acme+bot`` (write on acme/app), a notification with a delivery, an authorized
e-mail, a custom git trigger, a queued build, an OAuth application; alice has an app token, a
user notification and a build package. ``other`` is another organization (eve administers it)
with its own repository ``other/stuff``. Every person has a robot ``<name>+mine``.

API tokens (OAuth bearer tokens) are alice's, one per scope: alice administers acme, so what a
token may do is decided by its scope. ``root`` is a superuser.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

from django.test import Client

from accounts import crypto, scopes
from accounts import services as account_services
from accounts.models import Team
from builds import services as build_services
from notifications import services as notification_services
from notifications.models import UserNotification
from registry import services
from registry.models import Repository, Role
from tests.conftest import PASSWORD
from tests.registry.conftest import make_image, sha256, store_image, user_principal
from triggers import services as trigger_services
from triggers.models import BuildTrigger

ORG = "acme"
REPO = "acme/app"


@dataclass(frozen=True)
class Caller:
    """One kind of caller. ``user`` is the person behind it (tokens: their owner, alice)."""

    name: str
    user: str | None = None  # username of the person signing in (session, password)
    repo_role: str | None = None  # role on acme/app through a team or permission
    org_role: str | None = None  # the best team role in acme
    superuser: bool = False
    scope: str | None = None  # an API token with this one scope (owned by alice)
    robot: bool = False

    @property
    def session(self) -> bool:
        """Has a browser session (people do; robots and API tokens cannot sign in)."""
        return self.user is not None and self.scope is None


CALLERS = [
    Caller("anonymous"),
    Caller("user", user="charlie"),
    Caller("reader", user="rita", repo_role=Role.READ, org_role=Team.Role.MEMBER),
    Caller("writer", user="walt", repo_role=Role.WRITE, org_role=Team.Role.MEMBER),
    Caller("repo_admin", user="adam", repo_role=Role.ADMIN, org_role=Team.Role.MEMBER),
    Caller("org_member", user="mona", org_role=Team.Role.MEMBER),
    Caller("team_creator", user="carl", org_role=Team.Role.CREATOR),
    Caller("org_admin", user="alice", repo_role=Role.ADMIN, org_role=Team.Role.ADMIN),
    Caller("robot", repo_role=Role.WRITE, robot=True),
    *[
        Caller(f"token:{scope}", user="alice", repo_role=Role.ADMIN, org_role=Team.Role.ADMIN, scope=scope)
        for scope in sorted(scopes.ALL)
    ],
    Caller("superuser", user="root", superuser=True),
    Caller("other_org", user="eve"),
]
CALLER_NAMES = [caller.name for caller in CALLERS]
BY_NAME = {caller.name: caller for caller in CALLERS}


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class World:
    values: dict[str, str]  # path parameter name -> value
    foreign: dict[str, str]  # path parameter name -> the same kind of object in ``other``
    sessions: dict[str, str] = field(default_factory=dict)  # caller -> session cookie
    basics: dict[str, tuple[str, str]] = field(default_factory=dict)  # caller -> registry credentials
    bearers: dict[str, str] = field(default_factory=dict)  # caller -> API token
    v2_tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # (caller, scope) -> JWT

    def client(self, caller: Caller, family: str) -> tuple[Client, dict]:
        """A fresh client for one request and the headers that carry the caller's credentials.

        The API and the web take a session (people) or send what else the caller holds (an API
        token as a bearer, a robot's credentials as Basic), which those endpoints must not take
        for a session; the registry and squash families get theirs in ``headers_for``.
        """
        client = Client()
        headers = {}
        if caller.session:
            client.cookies["sessionid"] = self.sessions[caller.name]
        elif caller.name in self.bearers:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {self.bearers[caller.name]}"
        elif caller.name in self.basics:
            headers["HTTP_AUTHORIZATION"] = basic_header(*self.basics[caller.name])
        return client, headers

    def registry_token(self, caller: Caller, scope: str) -> str | None:
        """A /v2/auth bearer token for the caller and scope (None: anonymous, no token)."""
        if caller.name not in self.basics:
            return None
        key = (caller.name, scope)
        if key not in self.v2_tokens:
            response = Client().get(
                f"/v2/auth?service=testserver&scope={scope}",
                HTTP_AUTHORIZATION=basic_header(*self.basics[caller.name]),
            )
            assert response.status_code == 200, (caller.name, response.content)
            self.v2_tokens[key] = response.json()["token"]
        return self.v2_tokens[key]


def _person(username: str, **kwargs):
    user = account_services.user_create(username=username, password=PASSWORD, **kwargs)
    account_services.robot_create(namespace=user.namespace, short_name="mine")
    return user


def build_world() -> World:
    """Create everything (inside the caller's transaction) and sign the people in."""
    people = {name: _person(name) for name in ("alice", "charlie", "rita", "walt", "adam", "mona", "carl", "eve")}
    people["root"] = _person("root", is_superuser=True)
    alice = people["alice"]
    as_alice = user_principal(alice)

    acme = account_services.organization_create(name=ORG, creator=alice)
    app = services.repository_create(namespace=acme, name="app", principal=as_alice, description="The app")
    pub = services.repository_create(
        namespace=acme, name="pub", principal=as_alice, visibility=Repository.Visibility.PUBLIC
    )
    for team_name, member, role in (
        ("readers", "rita", Role.READ),
        ("writers", "walt", Role.WRITE),
        ("repoadmins", "adam", Role.ADMIN),
    ):
        team = account_services.team_create(organization=acme, name=team_name, role=Team.Role.MEMBER)
        account_services.team_member_add(team=team, user=people[member])
        for repository in (app, pub):
            services.repository_permission_set_team(
                repository=repository, team_name=team_name, role=role, principal=as_alice, ip=None
            )
    members = account_services.team_create(organization=acme, name="members", role=Team.Role.MEMBER)
    account_services.team_member_add(team=members, user=people["mona"])
    builders = account_services.team_create(organization=acme, name="builders", role=Team.Role.CREATOR)
    account_services.team_member_add(team=builders, user=people["carl"])

    bot, bot_token = account_services.robot_create(namespace=acme, short_name="bot")
    for repository in (app, pub):
        services.repository_permission_set_user(
            repository=repository, username=bot.username, role=Role.WRITE, principal=as_alice, ip=None
        )

    other = account_services.organization_create(name="other", creator=people["eve"])
    stuff = services.repository_create(namespace=other, name="stuff", principal=user_principal(people["eve"]))
    account_services.robot_create(namespace=other, short_name="bot")

    image = store_image(app, "latest", make_image("matrix"), as_alice)
    store_image(pub, "latest", make_image("matrix"), as_alice)
    store_image(stuff, "latest", make_image("other"), user_principal(people["eve"]))
    upload = services.upload_start(repository=app, principal=as_alice)

    notification, _ = notification_services.notification_create(
        repository=app,
        event="repo_push",
        method="webhook",
        config={"url": "https://hooks.example.com/matrix"},
        event_config={},
        title="matrix",
        principal=as_alice,
        ip=None,
    )
    delivery = notification_services.notification_test(notification=notification)
    notification_services.authorized_email_request(
        repository=app, email="ops@example.com", principal=as_alice, ip=None
    )
    notice = UserNotification.objects.create(user=alice, kind="matrix", organization=acme, repository=app)

    build_services.build_settings_update(enabled=True)
    trigger, _ = trigger_services.trigger_create_custom_git(
        repository=app, principal=as_alice, build_source="git@git.example.com:acme/app.git"
    )
    trigger_services.provider_app_set(
        service="github",
        enabled=True,
        client_id="matrix-client",
        client_secret="matrix-secret",
        web_url="https://github.example.com",
    )
    github_trigger = trigger_services.trigger_create(repository=app, service="github", principal=as_alice)
    # A webhook secret, as activation leaves it: the receiver then checks GitHub's signature.
    BuildTrigger.objects.filter(pk=github_trigger.pk).update(webhook_secret_encrypted=crypto.encrypt("matrix-hook"))
    package = build_services.package_create(owner=alice, mime_type="application/octet-stream")
    build_package = build_services.package_create(owner=alice, mime_type="application/octet-stream")
    build_services.package_upload(
        package=build_package, stream=io.BytesIO(b"FROM scratch\n"), length=len(b"FROM scratch\n")
    )
    build = build_services.build_create(repository=app, principal=as_alice, package=build_package)
    spare_package = build_services.package_create(owner=alice, mime_type="application/octet-stream")
    build_services.package_upload(package=spare_package, stream=io.BytesIO(b"FROM scratch\n"), length=13)

    application = account_services.oauth_application_create(organization=acme, name="matrix app", actor=alice)

    # The same kinds of objects in the other organization, to address through acme's paths.
    eve = user_principal(people["eve"])
    other_notification, _ = notification_services.notification_create(
        repository=stuff,
        event="repo_push",
        method="webhook",
        config={"url": "https://hooks.example.com/other"},
        event_config={},
        title="other",
        principal=eve,
        ip=None,
    )
    other_delivery = notification_services.notification_test(notification=other_notification)
    other_trigger, _ = trigger_services.trigger_create_custom_git(
        repository=stuff, principal=eve, build_source="git@git.example.com:other/stuff.git"
    )
    other_package = build_services.package_create(owner=people["eve"], mime_type="application/octet-stream")
    build_services.package_upload(package=other_package, stream=io.BytesIO(b"FROM scratch\n"), length=13)
    other_build = build_services.build_create(repository=stuff, principal=eve, package=other_package)
    other_application = account_services.oauth_application_create(
        organization=other, name="other app", actor=people["eve"]
    )
    app_token, _ = account_services.app_token_create(user=alice, title="matrix")

    values = {
        # registry and squash
        "name": REPO,
        "reference": "latest",
        "digest": image.digest,
        "layer_digest": sha256(image.blobs[1]),
        "upload_id": str(upload.uuid) if hasattr(upload, "uuid") else str(upload.pk),
        "tag": "latest",
        # API and web: repositories and what hangs off them
        "repository": REPO,
        "manifestref": image.digest,
        "uuid": str(notification.uuid),
        "notification_uuid": str(notification.uuid),
        "delivery_uuid": str(delivery.uuid),
        "email": "ops@example.com",
        "trigger_uuid": str(trigger.uuid),
        "github_trigger_uuid": str(github_trigger.uuid),
        "field_name": "refs",
        "build_uuid": str(build.uuid),
        "service": "github",
        "file_id": str(package.uuid),
        "spare_file_id": str(spare_package.uuid),
        # accounts
        "orgname": ORG,
        "org": ORG,
        "teamname": "readers",
        "team": "readers",
        "membername": "mona",
        "username": "mona",
        "robot_shortname": "bot",
        "short_name": "bot",
        "token_uuid": str(app_token.uuid),
        "client_id": application.client_id,
        "notice_uuid": str(notice.uuid),
        "url": "matrix-missing/",
        "prefix": "a",
        "path": "matrix-missing.css",
        # Django admin
        "object_id": "1",
        # A user that exists whatever the database's sequences say (PostgreSQL does not restart
        # them between tests): the admin's password page is /admin/accounts/user/<id>/password/.
        "id": str(alice.pk),
        "content_type_id": "1",
        "app_label": "accounts",
    }
    foreign = {
        "uuid": str(other_notification.uuid),
        "notification_uuid": str(other_notification.uuid),
        "delivery_uuid": str(other_delivery.uuid),
        "trigger_uuid": str(other_trigger.uuid),
        "build_uuid": str(other_build.uuid),
        "client_id": other_application.client_id,
    }
    world = World(values=values, foreign=foreign)
    for caller in CALLERS:
        if caller.session:
            client = Client()
            client.force_login(people[caller.user])
            world.sessions[caller.name] = client.cookies["sessionid"].value
            world.basics[caller.name] = (caller.user, PASSWORD)
        elif caller.scope is not None:
            _, token = account_services.oauth_token_create(user=alice, scopes=[caller.scope])
            world.bearers[caller.name] = token
            world.basics[caller.name] = ("$oauthtoken", token)
        elif caller.robot:
            world.basics[caller.name] = (bot.username, bot_token)
    return world
