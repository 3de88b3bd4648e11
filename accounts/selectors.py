"""Reads for accounts: credential checks that every API (registry, REST) shares."""

import hmac
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Q
from django.utils import timezone

from accounts import crypto
from accounts.models import AppToken, Namespace, Robot, Team, TeamMember, User

# Container clients send the password on every token request (a push of one image can ask for
# several tokens), and a password check (Argon2id, memory-hard by design) costs 0.1 s or more of CPU
# and 100 MiB of memory. A successful
# check is remembered for a few minutes under an HMAC of the stored hash and the password given:
# the same password against the same stored hash skips the slow hash; a changed password (new
# stored hash) or a wrong one always takes the full check, so no guess gets cheaper.
_VERIFIED_TTL = 300
_VERIFIED_MAX = 10_000
_verified_passwords: dict[str, float] = {}


def _verified_key(user: User, password: str) -> str:
    message = f"{user.pk}:{user.password}:{password}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, "sha256").hexdigest()


def user_by_password(*, username: str, password: str) -> User | None:
    user = User.objects.filter(username=username, is_robot=False, is_active=True).first()
    if user is None or not user.has_usable_password():
        # Run the hasher anyway so a missing user takes as long as a wrong password.
        authenticate(username=username, password=password)
        return None
    key = _verified_key(user, password)
    now = time.monotonic()
    if _verified_passwords.get(key, 0) > now:
        return user
    if authenticate(username=username, password=password) is None:
        return None
    if len(_verified_passwords) >= _VERIFIED_MAX:
        _verified_passwords.clear()
    _verified_passwords[key] = now + _VERIFIED_TTL
    return user


def robot_by_token(*, username: str, token: str) -> User | None:
    """The robot user ``ns+short`` when ``token`` is its current token."""
    robot = Robot.objects.select_related("user").filter(user__username=username).first()
    if robot is None or not robot.user.is_active:
        return None
    if not hmac.compare_digest(crypto.decrypt(robot.token_encrypted), token):
        return None
    return robot.user


def app_token_by_value(*, token: str) -> AppToken | None:
    """The live app token whose value is ``token``, with its user."""
    if len(token) <= AppToken.PREFIX_LENGTH:
        return None
    row = AppToken.objects.select_related("user").filter(token_prefix=token[: AppToken.PREFIX_LENGTH]).first()
    if row is None or not crypto.token_hash_matches(token, row.token_hash):
        return None
    if row.expiration is not None and row.expiration <= timezone.now():
        return None
    if not row.user.is_active:
        return None
    return row


def oauth_token_by_value(*, token: str):
    """The live REST API token whose value is ``token``, with its user."""
    from accounts.models import OAuthAccessToken

    if len(token) <= OAuthAccessToken.PREFIX_LENGTH:
        return None
    row = (
        OAuthAccessToken.objects.select_related("user")
        .filter(token_prefix=token[: OAuthAccessToken.PREFIX_LENGTH])
        .first()
    )
    if row is None or not crypto.token_hash_matches(token, row.token_hash):
        return None
    if row.expires is not None and row.expires <= timezone.now():
        return None
    if not row.user.is_active:
        return None
    return row


# --- Reads for the REST API (issue #4). ---

ENTITY_SEARCH_LIMIT = 10


def organization_by_name(*, name: str) -> Namespace | None:
    return Namespace.objects.filter(name=name, kind=Namespace.Kind.ORGANIZATION).first()


def user_namespace(*, user: User) -> Namespace | None:
    return Namespace.objects.filter(user=user).first()


def organization_roles(*, user: User | None, organization: Namespace) -> set[str]:
    """The roles of the teams the user belongs to in the organization."""
    if user is None or not user.is_authenticated:
        return set()
    return set(Team.objects.filter(organization=organization, members=user).values_list("role", flat=True))


def organization_teams(*, organization: Namespace):
    """Teams in creation order with ``member_count`` and ``repo_count`` (repositories the team
    holds a permission on)."""
    return (
        Team.objects.filter(organization=organization)
        .annotate(
            member_count=Count("teammember", distinct=True),
            repo_count=Count("repositorypermission", distinct=True),
        )
        .order_by("pk")
    )


def team_by_name(*, organization: Namespace, name: str) -> Team | None:
    return Team.objects.filter(organization=organization, name=name).first()


def team_names_of(*, user: User, organization: Namespace) -> set[str]:
    return set(Team.objects.filter(organization=organization, members=user).values_list("name", flat=True))


def team_members(*, team: Team):
    return User.objects.filter(teammember__team=team).order_by("username")


def user_by_name(*, username: str) -> User | None:
    return User.objects.filter(username=username).first()


def robots_of(*, namespace: Namespace, limit: int | None = None):
    robots = Robot.objects.filter(namespace=namespace).select_related("user").order_by("short_name")
    return robots[:limit] if limit else robots


def robot_by_short_name(*, namespace: Namespace, short_name: str) -> Robot | None:
    return Robot.objects.filter(namespace=namespace, short_name=short_name).select_related("user", "namespace").first()


def robot_permissions(*, robot_users):
    """Direct repository permissions of the given robot users, with their repositories."""
    from registry.models import RepositoryPermission

    return (
        RepositoryPermission.objects.filter(user__in=robot_users)
        .select_related("repository")
        .order_by("repository__name")
    )


def robot_team_names(*, robot_users) -> dict[int, list[str]]:
    """user id -> names of the teams the robot belongs to."""
    result: dict[int, list[str]] = {}
    for user_id, name in TeamMember.objects.filter(user__in=robot_users).values_list("user_id", "team__name"):
        result.setdefault(user_id, []).append(name)
    return result


@dataclass
class OrganizationMember:
    user: User
    teams: list[Team] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)


def organization_members(*, organization: Namespace) -> list[OrganizationMember]:
    """People (not robots) in any team of the organization, with their teams and the
    organization's repositories they hold a direct permission on."""
    from registry.models import RepositoryPermission

    members: dict[int, OrganizationMember] = {}
    rows = (
        TeamMember.objects.filter(team__organization=organization, user__is_robot=False)
        .select_related("user", "team")
        .order_by("user__username", "team__name")
    )
    for row in rows:
        members.setdefault(row.user_id, OrganizationMember(user=row.user)).teams.append(row.team)
    permissions = RepositoryPermission.objects.filter(
        repository__namespace=organization, user_id__in=members.keys()
    ).values_list("user_id", "repository__name")
    for user_id, repository_name in permissions:
        members[user_id].repositories.append(repository_name)
    return list(members.values())


def organization_member(*, organization: Namespace, user: User) -> OrganizationMember | None:
    """A user or robot's teams and direct permissions in the organization; None for outsiders
    (robots of the organization are members even outside every team)."""
    from registry.models import RepositoryPermission

    teams = list(Team.objects.filter(organization=organization, members=user).order_by("name"))
    if not teams and not Robot.objects.filter(user=user, namespace=organization).exists():
        return None
    repositories = list(
        RepositoryPermission.objects.filter(repository__namespace=organization, user=user)
        .order_by("repository__name")
        .values_list("repository__name", flat=True)
    )
    return OrganizationMember(user=user, teams=teams, repositories=repositories)


@dataclass
class EntityMatches:
    teams: list[Team]
    users: list[tuple[User, bool | None]]  # (user or robot, is_org_member or None outside an org)
    organization: Namespace | None


def entity_search(
    *, prefix: str, viewer: User | None, namespace_name: str, include_teams: bool, include_orgs: bool
) -> EntityMatches:
    """Users whose name starts with ``prefix``; with ``namespace_name`` naming an organization
    the viewer belongs to (or the viewer's own namespace), also its robots, and for
    organizations its teams and the organization itself."""
    viewer = viewer if viewer is not None and viewer.is_authenticated else None
    organization = organization_by_name(name=namespace_name) if namespace_name else None
    robot_namespace = None
    teams: list[Team] = []
    org_match = None
    if organization is not None:
        if viewer is not None and (viewer.is_superuser or organization_roles(user=viewer, organization=organization)):
            robot_namespace = organization
            if include_teams:
                teams = list(Team.objects.filter(organization=organization, name__startswith=prefix).order_by("name"))
            if include_orgs and organization.name.startswith(prefix):
                org_match = organization
    elif viewer is not None and namespace_name == viewer.username:
        robot_namespace = user_namespace(user=viewer)

    matches = Q(is_robot=False, is_active=True, username__startswith=prefix)
    if robot_namespace is not None:
        matches |= Q(robot__namespace=robot_namespace, username__startswith=f"{robot_namespace.name}+{prefix}")
    users = list(User.objects.filter(matches).order_by("username")[:ENTITY_SEARCH_LIMIT])
    if organization is None:
        return EntityMatches(teams=teams, users=[(user, None) for user in users], organization=org_match)
    in_org = set(
        TeamMember.objects.filter(team__organization=organization, user__in=users).values_list("user_id", flat=True)
    )
    flagged = [(user, user.is_robot or user.pk in in_org) for user in users]
    return EntityMatches(teams=teams, users=flagged, organization=org_match)


def oauth_applications(*, organization: Namespace):
    from accounts.models import OAuthApplication

    return OAuthApplication.objects.filter(organization=organization).order_by("pk")


def oauth_application(*, organization: Namespace, client_id: str):
    return oauth_applications(organization=organization).filter(client_id=client_id).first()


def oauth_application_by_client_id(*, client_id: str):
    from accounts.models import OAuthApplication

    return OAuthApplication.objects.select_related("organization").filter(client_id=client_id).first()


def app_tokens(*, user: User, expiring_within=None):
    tokens = AppToken.objects.filter(user=user).order_by("created")
    if expiring_within is not None:
        now = timezone.now()
        tokens = tokens.filter(expiration__gt=now, expiration__lte=now + expiring_within)
    return tokens


def app_token_by_uuid(*, user: User, token_uuid: str) -> AppToken | None:
    try:
        return AppToken.objects.filter(user=user, uuid=token_uuid).first()
    except (ValueError, DjangoValidationError):
        return None


def people(*, include_disabled: bool = True):
    users = User.objects.filter(is_robot=False).order_by("username")
    return users if include_disabled else users.filter(is_active=True)


def organizations():
    return Namespace.objects.filter(kind=Namespace.Kind.ORGANIZATION).order_by("name")


def team_permissions(*, team: Team):
    from registry.models import RepositoryPermission

    return RepositoryPermission.objects.filter(team=team).select_related("repository").order_by("repository__name")
