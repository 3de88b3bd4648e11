"""Who may do what to which repository: reads only, shared by /v2/ and the REST API."""

from dataclasses import dataclass

from django.db.models import Q

from accounts.models import Namespace, Team, User
from registry.models import ROLE_RANK, Repository, RepositoryPermission, Role


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, a robot, a repository access token, or nobody.

    ``key`` identifies it in tokens and upload sessions (``user:5``, ``token:3``, ``anon``).
    """

    kind: str  # "anonymous" | "user" | "robot" | "token"
    user: User | None = None
    access_token_id: int | None = None
    access_token_repository_id: int | None = None
    access_token_role: str | None = None

    @property
    def key(self) -> str:
        if self.kind == "token":
            return f"token:{self.access_token_id}"
        if self.user is not None:
            return f"user:{self.user.pk}"
        return "anon"

    @property
    def name(self) -> str:
        if self.kind == "token":
            return "$token"
        return self.user.username if self.user is not None else ""


ANONYMOUS = Principal(kind="anonymous")


def max_role(*roles: str | None) -> str | None:
    return max(roles, key=lambda role: ROLE_RANK[role], default=None)


def _org_team_roles(user: User, organization_id: int) -> set[str]:
    return set(Team.objects.filter(organization_id=organization_id, members=user).values_list("role", flat=True))


def repository_role(principal: Principal, repository: Repository) -> str | None:
    """The highest role the principal has on the repository (public repositories give read)."""
    base = Role.READ if repository.is_public else None
    if principal.kind == "token":
        if principal.access_token_repository_id == repository.pk:
            return max_role(base, principal.access_token_role)
        return base
    user = principal.user
    if user is None:
        return base
    namespace = repository.namespace
    if namespace.user_id == user.pk:
        return Role.ADMIN
    if namespace.kind == Namespace.Kind.ORGANIZATION and Team.Role.ADMIN in _org_team_roles(user, namespace.pk):
        return Role.ADMIN
    explicit = RepositoryPermission.objects.filter(
        Q(user=user) | Q(team__members=user), repository=repository
    ).values_list("role", flat=True)
    return max_role(base, *explicit)


def can_create_in(principal: Principal, namespace: Namespace) -> bool:
    """Users create in their own namespace; users and robots in organizations where a team of
    theirs has the admin or creator role."""
    user = principal.user
    if principal.kind not in ("user", "robot") or user is None:
        return False
    if namespace.user_id == user.pk:
        return True
    if namespace.kind != Namespace.Kind.ORGANIZATION:
        return False
    return bool(_org_team_roles(user, namespace.pk) & {Team.Role.ADMIN, Team.Role.CREATOR})


def visible_repositories(principal: Principal):
    """Repositories the principal may pull from, as a queryset (for the catalog)."""
    visible = Q(visibility=Repository.Visibility.PUBLIC)
    if principal.kind == "token":
        visible |= Q(pk=principal.access_token_repository_id)
    elif principal.user is not None:
        user = principal.user
        admin_orgs = Team.objects.filter(members=user, role=Team.Role.ADMIN).values("organization_id")
        visible |= (
            Q(namespace__user=user)
            | Q(namespace_id__in=admin_orgs)
            | Q(
                pk__in=RepositoryPermission.objects.filter(Q(user=user) | Q(team__members=user)).values("repository_id")
            )
        )
    return Repository.objects.filter(visible)
