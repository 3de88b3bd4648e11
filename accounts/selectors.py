"""Reads for accounts: credential checks that every API (registry, REST) shares."""

import hmac

from django.contrib.auth import authenticate
from django.utils import timezone

from accounts import crypto
from accounts.models import AppToken, Robot, User


def user_by_password(*, username: str, password: str) -> User | None:
    user = authenticate(username=username, password=password)
    if user is None or user.is_robot or not user.is_active:
        return None
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
