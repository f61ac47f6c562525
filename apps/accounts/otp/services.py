"""Writes for two-factor authentication and lockout. Each takes `actor`, runs in a transaction, is audited.

A user's own: begin and confirm enrollment, regenerate recovery codes, disable. An administrator's
(`user.manage` on "/"): require 2FA of a user or a group, reset a user's 2FA (lost phone), unlock a
locked-out user. Reads the login flow and the middleware need are here too (`two_factor_state`).
"""

import secrets
from dataclasses import dataclass

from axes.utils import reset as axes_reset
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext as _
from django_otp.models import Device

from apps.accounts.admin_services import require_manager
from apps.accounts.models import User
from apps.accounts.otp.models import (
    RecoveryCode,
    RecoveryCodeDevice,
    TotpDevice,
    TwoFactorRequirement,
    recovery_code_digest,
)
from apps.audit.services import record_event
from apps.core.errors import AccessDenied, ServiceError
from kvmpanel.secrets import encrypt

RECOVERY_CODE_COUNT = 10
# 16 characters of a 32-letter alphabet (no l, o, 0, 1): 80 bits, out of reach of a brute force on the stored SHA-256.
_RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class TwoFactorState:
    required: bool  # by the user's own requirement or one of their groups'
    enabled: bool  # a confirmed authenticator app


def annotate_two_factor_state(users):
    """`users` (a queryset) with `two_factor_required` (the user's own requirement or a group's) and
    `two_factor_enabled` (a confirmed authenticator app) on each, in the same query."""
    requirements = TwoFactorRequirement.objects.filter(Q(user_id=OuterRef("pk")) | Q(group__user=OuterRef("pk")))
    devices = TotpDevice.objects.filter(user_id=OuterRef("pk"), confirmed=True)
    return users.annotate(two_factor_required=Exists(requirements), two_factor_enabled=Exists(devices))


def two_factor_state(user) -> TwoFactorState:
    """Whether 2FA is required of `user` and whether they have it now, in one query."""
    if not getattr(user, "is_authenticated", False):
        return TwoFactorState(required=False, enabled=False)
    row = annotate_two_factor_state(User.objects.filter(pk=user.pk)).values("two_factor_required", "two_factor_enabled")
    row = row.first()
    if row is None:
        return TwoFactorState(required=False, enabled=False)
    return TwoFactorState(required=row["two_factor_required"], enabled=row["two_factor_enabled"])


def request_two_factor_state(user) -> TwoFactorState:
    """The state as the session's user was loaded with it this request (TwoFactorStateBackend: no query),
    else asked for (a user loaded by another backend)."""
    required = getattr(user, "two_factor_required", None)
    enabled = getattr(user, "two_factor_enabled", None)
    if required is None or enabled is None:
        return two_factor_state(user)
    return TwoFactorState(required=required, enabled=enabled)


def two_factor_required(user) -> bool:
    return two_factor_state(user).required


def confirmed_totp_device(user) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed=True).first()


def pending_totp_device(user) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed=False).first()


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _replace_recovery_codes(user: User) -> list[str]:
    device, _created = RecoveryCodeDevice.objects.get_or_create(
        user=user, defaults={"name": "recovery codes", "confirmed": True}
    )
    device.codes.all().delete()
    device.throttle_reset(commit=True)
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(RecoveryCode(device=device, digest=recovery_code_digest(code)) for code in codes)
    return codes


@transaction.atomic
def begin_enrollment(*, actor: User) -> TotpDevice:
    """A new, unconfirmed authenticator for `actor` (a previous unconfirmed one is replaced)."""
    if confirmed_totp_device(actor) is not None:
        raise ServiceError(
            _("Two-factor authentication is already on; disable it first to enroll another app."),
            status=409,
            code="enabled",
        )
    TotpDevice.objects.filter(user=actor, confirmed=False).delete()
    device = TotpDevice.objects.create(
        user=actor, name="authenticator app", confirmed=False, encrypted_key=encrypt(secrets.token_hex(20))
    )
    record_event(actor=actor, verb="user.two_factor.begin", target=actor)
    return device


@transaction.atomic
def confirm_enrollment(*, actor: User, code: str) -> tuple[TotpDevice, list[str]]:
    """Turn the pending authenticator on once it produced a right `code`; returns the recovery codes (shown once)."""
    device = TotpDevice.objects.select_for_update().filter(user=actor, confirmed=False).first()
    if device is None:
        raise ServiceError(_("Start the set-up first."), status=409, code="no-pending-device")
    if not device.verify_token(code):
        raise ServiceError(
            _("That code does not match: check the phone's clock and enter the current code."),
            status=400,
            code="invalid-code",
        )
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = _replace_recovery_codes(actor)
    record_event(actor=actor, verb="user.two_factor.enable", target=actor)
    return device, codes


@transaction.atomic
def regenerate_recovery_codes(*, actor: User) -> list[str]:
    """New recovery codes for `actor` (the old ones stop working); shown once."""
    if confirmed_totp_device(actor) is None:
        raise ServiceError(_("Two-factor authentication is off."), status=409, code="disabled")
    codes = _replace_recovery_codes(actor)
    record_event(actor=actor, verb="user.two_factor.recovery_codes", target=actor)
    return codes


def verify_second_factor(user: User, code: str) -> tuple[Device | None, bool]:
    """The device that accepts `code` (a TOTP code or a recovery code), and whether a device refused to
    try because of recent failures (django-otp's throttling). Spends a recovery code."""
    code = (code or "").strip()
    digits = code.replace(" ", "")
    with transaction.atomic():
        if digits.isdigit():
            candidates = TotpDevice.objects.select_for_update().filter(user=user, confirmed=True)
        else:
            candidates = RecoveryCodeDevice.objects.select_for_update().filter(user=user, confirmed=True)
        device = candidates.first()
        if device is None:
            return None, False
        allowed, _info = device.verify_is_allowed()
        if not allowed:
            return None, True
        if not device.verify_token(digits if digits.isdigit() else code):
            return None, False
        if isinstance(device, RecoveryCodeDevice):
            record_event(
                actor=user, verb="user.two_factor.recovery_used", target=user, detail={"remaining": device.remaining}
            )
    return device, False


def _check_password_or_code(actor: User, secret: str) -> None:
    if secret and actor.check_password(secret):
        return
    device, throttled = verify_second_factor(actor, secret)
    if throttled:
        raise ServiceError(_("Too many wrong codes: wait a few seconds."), status=429, code="throttled")
    if device is None:
        raise AccessDenied(_("Enter your password or a current code to do this."))


@transaction.atomic
def disable_two_factor(*, actor: User, password_or_code: str) -> None:
    """Remove `actor`'s authenticator and recovery codes; refused while an administrator requires 2FA."""
    if two_factor_required(actor):
        raise ServiceError(
            _("An administrator requires two-factor authentication of your account: it cannot be turned off."),
            status=409,
            code="required",
        )
    _check_password_or_code(actor, password_or_code)
    _delete_devices(actor)
    record_event(actor=actor, verb="user.two_factor.disable", target=actor)


def _delete_devices(user: User) -> int:
    count = TotpDevice.objects.filter(user=user).delete()[0]
    return count + RecoveryCodeDevice.objects.filter(user=user).delete()[0]


def _require_above(actor, user: User) -> None:
    # Like admin_services: a manager must not weaken a superuser's account (that holds more than they do).
    if user.is_superuser and not actor.is_superuser:
        raise AccessDenied(_("Only a superuser may change a superuser."))


def _set_requirement(target: User | Group, *, actor, required: bool) -> bool:
    kind = "user" if isinstance(target, User) else "group"
    existing = TwoFactorRequirement.objects.filter(**{kind: target}).first()
    if required and existing is None:
        TwoFactorRequirement.objects.create(**{kind: target}, created_by=actor)
        record_event(actor=actor, verb=f"{kind}.two_factor.require", target=target)
    elif not required and existing is not None:
        existing.delete()
        record_event(actor=actor, verb=f"{kind}.two_factor.unrequire", target=target)
    return required


@transaction.atomic
def set_user_two_factor_required(user: User, *, actor, required: bool) -> bool:
    """Require 2FA of `user` (or stop requiring it). Without a device they enroll right after their password."""
    require_manager(actor)
    if not required:
        _require_above(actor, user)
    return _set_requirement(user, actor=actor, required=required)


@transaction.atomic
def set_group_two_factor_required(group: Group, *, actor, required: bool) -> bool:
    """Require 2FA of every member of `group` (or stop requiring it)."""
    require_manager(actor)
    return _set_requirement(group, actor=actor, required=required)


@transaction.atomic
def reset_two_factor(user: User, *, actor) -> None:
    """Remove `user`'s authenticator and recovery codes (a lost phone). If 2FA is required of them, they
    enroll again at their next login; their sessions verified with the old device lose that mark."""
    require_manager(actor)
    _require_above(actor, user)
    removed = _delete_devices(user)
    record_event(actor=actor, verb="user.two_factor.reset", target=user, detail={"devices_removed": removed})


@transaction.atomic
def unlock_user(user: User, *, actor) -> int:
    """Forget `user`'s failed login attempts from every address (lifts a lockout now); returns how many."""
    require_manager(actor)
    removed = axes_reset(username=user.username)
    record_event(
        actor=actor,
        verb="user.unlock",
        target=user,
        detail={"attempt_records_removed": removed},
    )
    return removed


@transaction.atomic
def change_own_password(*, actor: User, new_password: str) -> None:
    """Set `actor`'s new password (the caller checked the old one); AUTH_PASSWORD_VALIDATORS apply (400)."""
    try:
        validate_password(new_password, actor)
    except ValidationError as error:
        raise ServiceError(" ".join(error.messages), status=400, code="invalid-password") from error
    actor.set_password(new_password)
    actor.save(update_fields=["password"])
    record_event(actor=actor, verb="user.change_password", target=actor)
