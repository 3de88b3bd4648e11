"""Repeated sign-ins with the same password skip the slow hash; nothing else does."""

from unittest import mock

from accounts import selectors

PASSWORD = "password-123"


def _checks(username, password):
    with mock.patch("accounts.selectors.authenticate", wraps=selectors.authenticate) as spy:
        user = selectors.user_by_password(username=username, password=password)
    return user, spy.call_count


def test_it_remembers_a_verified_password(alice):
    selectors._verified_passwords.clear()
    assert _checks("alice", PASSWORD) == (alice, 1)
    user, calls = _checks("alice", PASSWORD)
    assert user == alice and calls == 0


def test_it_always_checks_a_wrong_password(alice):
    selectors._verified_passwords.clear()
    _checks("alice", PASSWORD)
    assert _checks("alice", "wrong-password") == (None, 1)
    assert _checks("alice", "wrong-password") == (None, 1)


def test_a_password_change_forgets_the_old_password(alice):
    selectors._verified_passwords.clear()
    _checks("alice", PASSWORD)
    alice.set_password("a-new-password-1")
    alice.save()
    assert _checks("alice", PASSWORD) == (None, 1)
    user, calls = _checks("alice", "a-new-password-1")
    assert user.pk == alice.pk and calls == 1


def test_it_refuses_disabled_users_and_robots(alice, alice_robot):
    selectors._verified_passwords.clear()
    _checks("alice", PASSWORD)
    alice.is_active = False
    alice.save()
    assert _checks("alice", PASSWORD)[0] is None
    robot_user, token = alice_robot
    assert _checks(robot_user.username, token)[0] is None
