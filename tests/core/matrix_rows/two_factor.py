"""Permission-matrix rows of two-factor authentication and lockout.

The login steps and the user's own /account/2fa/ pages are about the signed-in user's own account: every
persona may use them (a refusal there is about state, e.g. 409 "start the set-up first", never about
someone else). The administrator's buttons and API actions need `user.manage` on "/" (root), else 403.
Behaviour: tests/accounts/test_two_factor*.py and tests/accounts/test_lockout.py.
"""

from django.urls import reverse

from tests.conftest import PASSWORD
from tests.support.matrix import Route


def a_user(world):
    from apps.accounts.models import User

    return User.objects.get_or_create(username="matrix-2fa-user")[0].pk


def a_group(world):
    from django.contrib.auth.models import Group

    return Group.objects.get_or_create(name="matrix-2fa-group")[0].pk


def alices_pending_code(world):
    """Start alice's enrollment and return the code her app would show (so she may confirm it)."""
    from apps.accounts.otp import services
    from tests.accounts.two_factor_support import code_for

    device = services.pending_totp_device(world.alice) or services.begin_enrollment(actor=world.alice)
    return {"code": code_for(device)}


def _manager_only(name: str, method: str, url, *, api: bool = False, data=None, allowed: int = 302) -> Route:
    return Route(name, method, url, 401 if api else 302, 403, 403, "root", allowed, data=data, api=api)


ROUTES = [
    # Nobody mid-login: the code step sends everyone back to /login/ (or on, when already signed in).
    Route("login-verify", "get", lambda w: reverse("login-verify"), 302, 302, 302, "alice", 302),
    Route("login-verify", "post", lambda w: reverse("login-verify"), 302, 302, 302, "alice", 302),
    Route("account-2fa", "get", lambda w: reverse("account-2fa"), 302, 200, 200, "alice", 200),
    # One's own password: everyone signed in (the new one passes the validators: the answer is a redirect).
    Route("account-password", "get", lambda w: reverse("account-password"), 302, 200, 200, "alice", 200),
    Route(
        "account-password",
        "post",
        lambda w: reverse("account-password"),
        302,
        302,
        302,
        "alice",
        302,
        data=lambda w: {
            "old_password": PASSWORD,
            "new_password1": "a much better passphrase",
            "new_password2": "a much better passphrase",
        },
    ),
    Route("account-2fa-setup", "post", lambda w: reverse("account-2fa-setup"), 302, 302, 302, "alice", 302),
    # Only alice has a pending app here (made by the data): the others are told to start the set-up first.
    Route(
        "account-2fa-confirm",
        "post",
        lambda w: reverse("account-2fa-confirm"),
        302,
        409,
        409,
        "alice",
        200,
        data=alices_pending_code,
    ),
    Route("account-2fa-recovery", "post", lambda w: reverse("account-2fa-recovery"), 302, 302, 302, "alice", 302),
    Route(
        "account-2fa-disable",
        "post",
        lambda w: reverse("account-2fa-disable"),
        302,
        302,
        302,
        "alice",
        302,
        data=lambda w: {"password_or_code": PASSWORD},
    ),
    _manager_only(
        "account-user-two-factor",
        "post",
        lambda w: reverse("account-user-two-factor", args=[a_user(w)]),
        data=lambda w: {"required": "1"},
    ),
    _manager_only(
        "account-user-reset-two-factor", "post", lambda w: reverse("account-user-reset-two-factor", args=[a_user(w)])
    ),
    _manager_only("account-user-unlock", "post", lambda w: reverse("account-user-unlock", args=[a_user(w)])),
    _manager_only(
        "account-group-two-factor",
        "post",
        lambda w: reverse("account-group-two-factor", args=[a_group(w)]),
        data=lambda w: {"required": "1"},
    ),
    _manager_only(
        "user-two-factor", "get", lambda w: reverse("user-two-factor", args=[a_user(w)]), api=True, allowed=200
    ),
    _manager_only(
        "user-two-factor",
        "post",
        lambda w: reverse("user-two-factor", args=[a_user(w)]),
        api=True,
        allowed=200,
        data=lambda w: {"required": True},
    ),
    _manager_only(
        "user-reset-two-factor",
        "post",
        lambda w: reverse("user-reset-two-factor", args=[a_user(w)]),
        api=True,
        allowed=200,
    ),
    _manager_only("user-unlock", "post", lambda w: reverse("user-unlock", args=[a_user(w)]), api=True, allowed=200),
    _manager_only(
        "group-two-factor", "get", lambda w: reverse("group-two-factor", args=[a_group(w)]), api=True, allowed=200
    ),
    _manager_only(
        "group-two-factor",
        "post",
        lambda w: reverse("group-two-factor", args=[a_group(w)]),
        api=True,
        allowed=200,
        data=lambda w: {"required": True},
    ),
]
