"""Writes for users, organizations, teams, robots and app tokens."""

import re
import secrets
import string
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import crypto
from accounts.models import AppToken, Namespace, Robot, Team, TeamMember, User

# Namespace names are repository path components (the OCI grammar) of 2-255 characters.
# \Z, not $ ("$" matches before a trailing newline); robot names are checked with fullmatch.
NAMESPACE_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
ROBOT_SHORT_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
ROBOT_TOKEN_LENGTH = 64
APP_TOKEN_LENGTH = 60


def validate_namespace_name(name: str) -> None:
    if not (2 <= len(name) <= 255) or not NAMESPACE_RE.match(name):
        raise ValidationError(
            f"Invalid namespace {name!r}: 2-255 characters of a-z, 0-9 and separators . _ -",
            code="invalid_namespace",
        )


@transaction.atomic
def user_create(*, username: str, password: str | None, email: str = "", is_superuser: bool = False) -> User:
    """Create a person and the namespace of the same name."""
    validate_namespace_name(username)
    if Namespace.objects.filter(name=username).exists():
        raise ValidationError(f"The name {username!r} is already taken", code="name_taken")
    user = User(username=username, email=email, is_superuser=is_superuser, is_staff=is_superuser)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    Namespace.objects.create(name=username, kind=Namespace.Kind.USER, user=user, email=email)
    return user


def user_namespace_ensure(*, user: User) -> Namespace:
    """The namespace of a person created outside user_create (Django admin)."""
    validate_namespace_name(user.username)
    namespace, _ = Namespace.objects.get_or_create(
        user=user, defaults={"name": user.username, "kind": Namespace.Kind.USER, "email": user.email}
    )
    return namespace


@transaction.atomic
def organization_create(*, name: str, creator: User, email: str = "") -> Namespace:
    """Create an organization with an ``owners`` team (role admin) holding its creator."""
    validate_namespace_name(name)
    if Namespace.objects.filter(name=name).exists():
        raise ValidationError(f"The name {name!r} is already taken", code="name_taken")
    org = Namespace.objects.create(name=name, kind=Namespace.Kind.ORGANIZATION, email=email)
    owners = Team.objects.create(organization=org, name="owners", role=Team.Role.ADMIN)
    TeamMember.objects.create(team=owners, user=creator)
    return org


def team_create(*, organization: Namespace, name: str, role: str = Team.Role.MEMBER, description: str = "") -> Team:
    if not organization.is_organization:
        raise ValidationError("Teams belong to organizations", code="not_organization")
    if len(name) > 255 or not ROBOT_SHORT_RE.fullmatch(name):  # 255: the column's length
        raise ValidationError(f"Invalid team name {name!r}", code="invalid_team")
    return Team.objects.create(organization=organization, name=name, role=role, description=description)


def team_member_add(*, team: Team, user: User) -> TeamMember:
    member, _ = TeamMember.objects.get_or_create(team=team, user=user)
    return member


@transaction.atomic
def robot_create(*, namespace: Namespace, short_name: str, description: str = "") -> tuple[User, str]:
    """Create ``<namespace>+<short_name>`` and return it with its token (shown to admins)."""
    if not (2 <= len(short_name) <= 255) or not ROBOT_SHORT_RE.fullmatch(short_name):
        raise ValidationError(
            f"Invalid robot name {short_name!r}: 2-255 characters matching {ROBOT_SHORT_RE.pattern}",
            code="invalid_robot",
        )
    username = f"{namespace.name}+{short_name}"
    if User.objects.filter(username=username).exists():
        raise ValidationError(f"Robot {username!r} already exists", code="name_taken")
    user = User(username=username, is_robot=True)
    user.set_unusable_password()
    user.save()
    token = crypto.random_token(ROBOT_TOKEN_LENGTH)
    Robot.objects.create(
        user=user,
        namespace=namespace,
        short_name=short_name,
        description=description,
        token_encrypted=crypto.encrypt(token),
    )
    return user, token


def robot_regenerate_token(*, robot: Robot) -> str:
    token = crypto.random_token(ROBOT_TOKEN_LENGTH)
    robot.token_encrypted = crypto.encrypt(token)
    robot.save(update_fields=["token_encrypted"])
    return token


def robot_token(*, robot: Robot) -> str:
    return crypto.decrypt(robot.token_encrypted)


def app_token_create(*, user: User, title: str, expiration=None) -> tuple[AppToken, str]:
    """Create an app-specific token; the clear token is returned once and never stored."""
    token = crypto.random_token(APP_TOKEN_LENGTH)
    row = AppToken.objects.create(
        user=user,
        title=title,
        token_prefix=token[: AppToken.PREFIX_LENGTH],
        token_hash=crypto.token_hash(token),
        expiration=expiration,
    )
    return row, token


def app_token_touch(*, app_token: AppToken) -> None:
    """Record use, at most once a minute, so a busy CLI does not write on every request."""
    now = timezone.now()
    if app_token.last_accessed is None or (now - app_token.last_accessed).total_seconds() > 60:
        AppToken.objects.filter(pk=app_token.pk).update(last_accessed=now)


OAUTH_TOKEN_LENGTH = 40


def oauth_token_create(*, user: User, scopes, application=None, expires=None):
    """Issue a REST API bearer token with the given Quay scopes; the clear token is returned once."""
    from accounts.models import OAuthAccessToken

    token = crypto.random_token(OAUTH_TOKEN_LENGTH)
    row = OAuthAccessToken.objects.create(
        application=application,
        user=user,
        scopes=" ".join(sorted(scopes)),
        token_prefix=token[: OAuthAccessToken.PREFIX_LENGTH],
        token_hash=crypto.token_hash(token),
        expires=expires,
    )
    return row, token


# --- REST API writes (issue #4): each one audited in the usage log with the change. ---

ORG_EXISTS_MESSAGE = "A user or organization with this name already exists"
CLIENT_ID_LENGTH = 20
CLIENT_SECRET_LENGTH = 40
GENERATED_PASSWORD_LENGTH = 32
# Quay's implicit-grant tokens live ten years; the lifetime is reported as ``expires_in``.
OAUTH_IMPLICIT_TOKEN_SECONDS = int(60 * 60 * 24 * 365.25 * 10)


def namespace_log(
    kind: str, *, actor: User | None, namespace: Namespace | None, metadata: dict, ip: str | None = None
) -> None:
    """A usage-log entry about a namespace (no repository), in the caller's transaction."""
    from registry.models import UsageLog

    UsageLog.objects.create(
        kind=kind,
        actor=actor,
        actor_name=actor.username if actor is not None else "",
        namespace=namespace,
        ip=ip or None,
        metadata=metadata,
    )


def _name_taken(name: str) -> bool:
    # Users created outside user_create may lack a namespace, so check both tables.
    return Namespace.objects.filter(name=name).exists() or User.objects.filter(username=name).exists()


def _human_admin_count(organization: Namespace) -> int:
    return (
        User.objects.filter(teams__organization=organization, teams__role=Team.Role.ADMIN, is_robot=False)
        .distinct()
        .count()
    )


def _ensure_admin_left(organization: Namespace) -> None:
    """Refuse a change that would leave an organization with nobody able to administer it."""
    if _human_admin_count(organization) == 0:
        raise ValidationError(
            "The organization must keep at least one user in a team with the admin role", code="last_admin"
        )


@transaction.atomic
def organization_register(*, name: str, creator: User, email: str = "", ip: str | None = None) -> Namespace:
    if _name_taken(name):
        raise ValidationError(ORG_EXISTS_MESSAGE, code="name_taken")
    org = organization_create(name=name, creator=creator, email=email)
    namespace_log("org_create", actor=creator, namespace=org, metadata={"email": email, "namespace": name}, ip=ip)
    return org


TAG_EXPIRATION_INVALID = "Invalid tag expiration option"


def tag_expiration_check(seconds: int) -> int:
    """A namespace's time machine window must be one of TAG_EXPIRATION_OPTIONS (as in Quay)."""
    if seconds not in settings.TAG_EXPIRATION_OPTIONS:
        raise ValidationError(TAG_EXPIRATION_INVALID, code="invalid_tag_expiration")
    return seconds


@transaction.atomic
def user_tag_expiration_set(*, user: User, seconds: int, ip: str | None = None) -> Namespace:
    """Change the time machine window of a person's own namespace (``PUT /api/v1/user/``)."""
    tag_expiration_check(seconds)
    namespace = user_namespace_ensure(user=user)
    if namespace.time_machine_seconds != seconds:
        namespace.time_machine_seconds = seconds
        namespace.save(update_fields=["time_machine_seconds"])
        namespace_log(
            "user_change_tag_expiration", actor=user, namespace=namespace, metadata={"tag_expiration": seconds}, ip=ip
        )
    return namespace


@transaction.atomic
def organization_update(
    *,
    organization: Namespace,
    actor: User,
    email: str | None = None,
    tag_expiration_s: int | None = None,
    ip: str | None = None,
) -> Namespace:
    if email is not None and email != organization.email:
        old = organization.email
        organization.email = email
        organization.save(update_fields=["email"])
        namespace_log(
            "org_change_email",
            actor=actor,
            namespace=organization,
            metadata={"email": email, "old_email": old, "namespace": organization.name},
            ip=ip,
        )
    if tag_expiration_s is not None:
        tag_expiration_check(tag_expiration_s)
    if tag_expiration_s is not None and tag_expiration_s != organization.time_machine_seconds:
        organization.time_machine_seconds = tag_expiration_s
        organization.save(update_fields=["time_machine_seconds"])
        namespace_log(
            "org_change_tag_expiration",
            actor=actor,
            namespace=organization,
            metadata={"tag_expiration": tag_expiration_s, "namespace": organization.name},
            ip=ip,
        )
    return organization


def _delete_namespace_contents(namespace: Namespace) -> None:
    from registry.models import ManifestChild

    # Index children are PROTECTed so a manifest in use cannot vanish; here the whole
    # namespace goes, so the links go first and the cascade can remove the manifests.
    ManifestChild.objects.filter(manifest__repository__namespace=namespace).delete()
    User.objects.filter(robot__namespace=namespace).delete()


@transaction.atomic
def organization_delete(*, organization: Namespace, actor: User, ip: str | None = None) -> None:
    """Delete an organization with its repositories, teams, robots and applications.

    Blobs stay in storage until garbage collection finds them unreferenced.
    """
    name = organization.name
    _delete_namespace_contents(organization)
    organization.delete()
    # Logged after the delete: the entry keeps the name, not a key to the gone namespace.
    namespace_log("org_delete", actor=actor, namespace=None, metadata={"namespace": name}, ip=ip)


@transaction.atomic
def organization_rename(*, organization: Namespace, new_name: str, actor: User, ip: str | None = None) -> Namespace:
    """Rename an organization; its robots ``old+short`` become ``new+short``."""
    if new_name == organization.name:
        return organization
    validate_namespace_name(new_name)
    if _name_taken(new_name):
        raise ValidationError(ORG_EXISTS_MESSAGE, code="name_taken")
    old_name = organization.name
    organization.name = new_name
    organization.save(update_fields=["name"])
    for robot in Robot.objects.filter(namespace=organization).select_related("user"):
        robot.user.username = f"{new_name}+{robot.short_name}"
        robot.user.save(update_fields=["username"])
    namespace_log(
        "org_change_name",
        actor=actor,
        namespace=organization,
        metadata={"old_name": old_name, "new_name": new_name, "namespace": new_name},
        ip=ip,
    )
    return organization


@transaction.atomic
def team_put(
    *,
    organization: Namespace,
    name: str,
    actor: User,
    role: str | None = None,
    description: str | None = None,
    ip: str | None = None,
) -> tuple[Team, bool]:
    """Create the team, or update its role and description; returns (team, created)."""
    team = Team.objects.select_for_update().filter(organization=organization, name=name).first()
    if team is None:
        team = team_create(
            organization=organization, name=name, role=role or Team.Role.MEMBER, description=description or ""
        )
        namespace_log("org_create_team", actor=actor, namespace=organization, metadata={"team": name}, ip=ip)
        return team, True
    if description is not None and description != team.description:
        team.description = description
        team.save(update_fields=["description"])
        namespace_log(
            "org_set_team_description",
            actor=actor,
            namespace=organization,
            metadata={"team": name, "description": description},
            ip=ip,
        )
    if role is not None and role != team.role:
        team.role = role
        team.save(update_fields=["role"])
        _ensure_admin_left(organization)
        namespace_log(
            "org_set_team_role", actor=actor, namespace=organization, metadata={"team": name, "role": role}, ip=ip
        )
    return team, False


@transaction.atomic
def team_delete(*, team: Team, actor: User, ip: str | None = None) -> None:
    organization = team.organization
    name = team.name
    team.delete()
    _ensure_admin_left(organization)
    namespace_log("org_delete_team", actor=actor, namespace=organization, metadata={"team": name}, ip=ip)


@transaction.atomic
def team_member_put(*, team: Team, user: User, actor: User, ip: str | None = None) -> TeamMember:
    """Add a user, or a robot of the team's own organization, to the team."""
    if user.is_robot:
        robot = Robot.objects.filter(user=user).first()
        if robot is None or robot.namespace_id != team.organization_id:
            raise ValidationError(
                "Cannot add the specified robot to this team, as it is not a member of the organization",
                code="foreign_robot",
            )
    elif not user.is_active:
        raise ValidationError("Cannot add a disabled user to a team", code="disabled_user")
    member, created = TeamMember.objects.get_or_create(team=team, user=user)
    if created:
        namespace_log(
            "org_add_team_member",
            actor=actor,
            namespace=team.organization,
            metadata={"member": user.username, "team": team.name},
            ip=ip,
        )
    return member


@transaction.atomic
def team_member_remove(*, team: Team, user: User, actor: User, ip: str | None = None) -> bool:
    """Remove a member; False when the user was not in the team."""
    deleted, _ = TeamMember.objects.filter(team=team, user=user).delete()
    if not deleted:
        return False
    _ensure_admin_left(team.organization)
    namespace_log(
        "org_remove_team_member",
        actor=actor,
        namespace=team.organization,
        metadata={"member": user.username, "team": team.name},
        ip=ip,
    )
    return True


@transaction.atomic
def organization_member_remove(*, organization: Namespace, user: User, actor: User, ip: str | None = None) -> None:
    """Take a user out of every team of the organization and drop their permissions on its repositories."""
    from registry.models import RepositoryPermission

    TeamMember.objects.filter(team__organization=organization, user=user).delete()
    RepositoryPermission.objects.filter(repository__namespace=organization, user=user).delete()
    _ensure_admin_left(organization)
    namespace_log("org_remove_member", actor=actor, namespace=organization, metadata={"member": user.username}, ip=ip)


@transaction.atomic
def robot_register(
    *,
    namespace: Namespace,
    short_name: str,
    actor: User,
    description: str = "",
    unstructured_metadata: dict | None = None,
    ip: str | None = None,
) -> tuple[Robot, str]:
    """Create a robot through the API; returns its Robot row and token."""
    user, token = robot_create(namespace=namespace, short_name=short_name, description=description)
    robot = user.robot
    if unstructured_metadata:
        robot.unstructured_metadata = unstructured_metadata
        robot.save(update_fields=["unstructured_metadata"])
    namespace_log(
        "create_robot",
        actor=actor,
        namespace=namespace,
        metadata={
            "robot": short_name,
            "description": description,
            "unstructured_metadata": unstructured_metadata or {},
        },
        ip=ip,
    )
    return robot, token


@transaction.atomic
def robot_delete(*, robot: Robot, actor: User, ip: str | None = None) -> None:
    namespace = robot.namespace
    short_name = robot.short_name
    # Deleting the user removes the Robot row, its team memberships and repository permissions.
    robot.user.delete()
    namespace_log("delete_robot", actor=actor, namespace=namespace, metadata={"robot": short_name}, ip=ip)


@transaction.atomic
def robot_regenerate(*, robot: Robot, actor: User, ip: str | None = None) -> str:
    token = robot_regenerate_token(robot=robot)
    namespace_log(
        "regenerate_robot_token", actor=actor, namespace=robot.namespace, metadata={"robot": robot.short_name}, ip=ip
    )
    return token


def _new_client_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(CLIENT_ID_LENGTH))


@transaction.atomic
def oauth_application_create(
    *,
    organization: Namespace,
    name: str,
    actor: User,
    application_uri: str = "",
    redirect_uri: str = "",
    description: str = "",
    avatar_email: str = "",
    ip: str | None = None,
):
    from accounts.models import OAuthApplication

    application = OAuthApplication.objects.create(
        organization=organization,
        name=name,
        application_uri=application_uri,
        redirect_uri=redirect_uri,
        description=description,
        avatar_email=avatar_email,
        client_id=_new_client_id(),
        client_secret_encrypted=crypto.encrypt(crypto.random_token(CLIENT_SECRET_LENGTH)),
    )
    namespace_log(
        "create_application",
        actor=actor,
        namespace=organization,
        metadata={"application_name": name, "client_id": application.client_id},
        ip=ip,
    )
    return application


@transaction.atomic
def oauth_application_update(
    *,
    application,
    actor: User,
    name: str,
    application_uri: str,
    redirect_uri: str,
    description: str = "",
    avatar_email: str = "",
    ip: str | None = None,
):
    application.name = name
    application.application_uri = application_uri
    application.redirect_uri = redirect_uri
    application.description = description
    application.avatar_email = avatar_email
    application.save()
    namespace_log(
        "update_application",
        actor=actor,
        namespace=application.organization,
        metadata={"application_name": name, "client_id": application.client_id},
        ip=ip,
    )
    return application


@transaction.atomic
def oauth_application_delete(*, application, actor: User, ip: str | None = None) -> None:
    organization = application.organization
    metadata = {"application_name": application.name, "client_id": application.client_id}
    # Tokens issued through the application cascade with it.
    application.delete()
    namespace_log("delete_application", actor=actor, namespace=organization, metadata=metadata, ip=ip)


@transaction.atomic
def oauth_application_reset_secret(*, application, actor: User, ip: str | None = None):
    application.client_secret_encrypted = crypto.encrypt(crypto.random_token(CLIENT_SECRET_LENGTH))
    application.save(update_fields=["client_secret_encrypted"])
    namespace_log(
        "reset_application_client_secret",
        actor=actor,
        namespace=application.organization,
        metadata={"application_name": application.name, "client_id": application.client_id},
        ip=ip,
    )
    return application


def oauth_client_secret(*, application) -> str:
    return crypto.decrypt(application.client_secret_encrypted)


def oauth_token_authorize(*, application, user: User, scopes) -> tuple:
    """The implicit grant: a token for ``user`` through ``application`` with the given scopes."""
    from accounts import scopes as quay_scopes

    granted = set(scopes)
    if not user.is_superuser:
        # The scope would be inert today, but would turn live if the user were promoted later.
        granted.discard(quay_scopes.SUPERUSER)
    expires = timezone.now() + timedelta(seconds=OAUTH_IMPLICIT_TOKEN_SECONDS)
    return oauth_token_create(user=user, scopes=granted, application=application, expires=expires)


@transaction.atomic
def app_token_register(*, user: User, title: str, ip: str | None = None) -> tuple[AppToken, str]:
    row, token = app_token_create(user=user, title=title)
    namespace_log(
        "create_app_specific_token",
        actor=user,
        namespace=Namespace.objects.filter(user=user).first(),
        metadata={"app_specific_token_title": title, "app_specific_token": str(row.uuid)},
        ip=ip,
    )
    return row, token


@transaction.atomic
def app_token_revoke(*, app_token: AppToken, actor: User, ip: str | None = None) -> None:
    metadata = {"app_specific_token_title": app_token.title, "app_specific_token": str(app_token.uuid)}
    app_token.delete()
    namespace_log(
        "revoke_app_specific_token",
        actor=actor,
        namespace=Namespace.objects.filter(user=actor).first(),
        metadata=metadata,
        ip=ip,
    )


def _generated_password() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(GENERATED_PASSWORD_LENGTH))


@transaction.atomic
def superuser_user_create(*, username: str, actor: User, email: str = "", ip: str | None = None) -> tuple[User, str]:
    """Create a user with a generated password, returned once for the superuser to hand over."""
    if _name_taken(username):
        raise ValidationError(ORG_EXISTS_MESSAGE, code="name_taken")
    password = _generated_password()
    user = user_create(username=username, password=password, email=email)
    namespace_log(
        "user_create", actor=actor, namespace=user.namespace, metadata={"username": username, "email": email}, ip=ip
    )
    return user, password


@transaction.atomic
def superuser_user_update(
    *,
    user: User,
    actor: User,
    email: str | None = None,
    password: str | None = None,
    enabled: bool | None = None,
    superuser: bool | None = None,
    ip: str | None = None,
) -> User:
    if user.pk == actor.pk and (enabled is False or superuser is False):
        # A superuser who disables or demotes themselves could leave nobody to undo it.
        raise ValidationError("Superusers cannot disable or demote themselves", code="self_lockout")
    namespace = Namespace.objects.filter(user=user).first()
    changes = []
    if email is not None and email != user.email:
        user.email = email
        changes.append(("user_change_email", {"email": email}))
        if namespace is not None:
            namespace.email = email
            namespace.save(update_fields=["email"])
    if password is not None:
        user.set_password(password)
        changes.append(("user_change_password", {}))
    if enabled is not None and enabled != user.is_active:
        user.is_active = enabled
        changes.append(("user_enable" if enabled else "user_disable", {}))
    if superuser is not None and superuser != user.is_superuser:
        user.is_superuser = superuser
        user.is_staff = superuser
        changes.append(("user_change_superuser", {"superuser": superuser}))
    user.save()
    for kind, metadata in changes:
        namespace_log(kind, actor=actor, namespace=namespace, metadata={"username": user.username, **metadata}, ip=ip)
    return user


@transaction.atomic
def user_delete(*, user: User, actor: User, ip: str | None = None) -> None:
    """Delete a person with their namespace, its repositories and robots."""
    namespace = Namespace.objects.filter(user=user).first()
    username = user.username
    if namespace is not None:
        _delete_namespace_contents(namespace)
        namespace.delete()
    user.delete()
    namespace_log("user_delete", actor=actor, namespace=None, metadata={"username": username}, ip=ip)


# --- Self-service writes of the web UI (issue #6). ---


@transaction.atomic
def user_password_change(*, user: User, password: str, ip: str | None = None) -> User:
    """Set a person's own password (the caller has checked the old one and the validators)."""
    user.set_password(password)
    user.save(update_fields=["password"])
    namespace_log(
        "user_change_password",
        actor=user,
        namespace=Namespace.objects.filter(user=user).first(),
        metadata={"username": user.username},
        ip=ip,
    )
    return user
