"""Input and output shapes of the account endpoints (Quay's field names)."""

import hashlib
from email.utils import formatdate

from rest_framework import serializers

from accounts.models import Namespace, Team, User


def avatar(name: str, email: str, kind: str) -> dict:
    digest = hashlib.md5((email or name).encode(), usedforsecurity=False).hexdigest()
    return {"name": name, "hash": digest, "color": f"#{digest[:6]}", "kind": kind}


def format_date(value) -> str | None:
    """Quay's date format in API bodies: RFC 2822 in UTC (``Tue, 01 Jan 2019 00:00:00 -0000``)."""
    if value is None:
        return None
    return formatdate(value.timestamp())


def user_avatar(user: User) -> dict:
    return avatar(user.username, user.email, "robot" if user.is_robot else "user")


def org_avatar(org: Namespace) -> dict:
    return avatar(org.name, org.email, "org")


def team_avatar(team: Team) -> dict:
    return avatar(team.name, "", "team")


def organization_summary(org: Namespace, user: User) -> dict:
    roles = set(Team.objects.filter(organization=org, members=user).values_list("role", flat=True))
    return {
        "name": org.name,
        "avatar": avatar(org.name, org.email, "org"),
        "can_create_repo": bool(roles & {Team.Role.ADMIN, Team.Role.CREATOR}),
        "public": False,
        "is_org_admin": Team.Role.ADMIN in roles,
        "preferred_namespace": False,
    }


def user_view(user: User) -> dict:
    namespace = getattr(user, "namespace", None)
    orgs = Namespace.objects.filter(kind=Namespace.Kind.ORGANIZATION, teams__members=user).distinct().order_by("name")
    return {
        "anonymous": False,
        "username": user.username,
        "avatar": avatar(user.username, user.email, "user"),
        "can_create_repo": True,
        "is_me": True,
        "verified": True,
        "email": user.email,
        "logins": [],
        "invoice_email": False,
        "invoice_email_address": None,
        "preferred_namespace": False,
        "tag_expiration_s": namespace.time_machine_seconds if namespace else 0,
        "prompts": [],
        "company": None,
        "family_name": user.last_name or None,
        "given_name": user.first_name or None,
        "location": None,
        "super_user": user.is_superuser,
        "organizations": [organization_summary(org, user) for org in orgs],
    }


class SigninInput(serializers.Serializer):
    username = serializers.CharField(max_length=255)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)


class InitializeInput(serializers.Serializer):
    username = serializers.CharField(max_length=255)
    password = serializers.CharField(min_length=8, max_length=1024, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    access_token = serializers.BooleanField(required=False, default=False)
