"""Writes for users, organizations, teams, robots and app tokens."""

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import crypto
from accounts.models import AppToken, Namespace, Robot, Team, TeamMember, User

# Namespace names are repository path components (the OCI grammar) of 2-255 characters.
NAMESPACE_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
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
    if not ROBOT_SHORT_RE.match(name):
        raise ValidationError(f"Invalid team name {name!r}", code="invalid_team")
    return Team.objects.create(organization=organization, name=name, role=role, description=description)


def team_member_add(*, team: Team, user: User) -> TeamMember:
    member, _ = TeamMember.objects.get_or_create(team=team, user=user)
    return member


@transaction.atomic
def robot_create(*, namespace: Namespace, short_name: str, description: str = "") -> tuple[User, str]:
    """Create ``<namespace>+<short_name>`` and return it with its token (shown to admins)."""
    if not (2 <= len(short_name) <= 255) or not ROBOT_SHORT_RE.match(short_name):
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
