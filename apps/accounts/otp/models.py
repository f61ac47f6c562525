"""Two-factor devices on django-otp's plugin framework, and who must use them.

django-otp's stock TOTPDevice and StaticToken keep the seed and the recovery codes in clear; these
keep neither: the TOTP seed is encrypted at rest (kvmpanel.secrets) and a recovery code is stored as
the SHA-256 of an 80-bit random code (one hash is enough at that entropy). Both are django-otp
`Device`s, so `django_otp.login()` marks a session verified with either and OTPMiddleware reads it.
"""

import hashlib
import time
from base64 import b32encode
from binascii import unhexlify
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from kvmpanel.secrets import SecretUnreadable, decrypt


def _throttle_factor() -> int:
    # django-otp's own setting: after n failures the next try waits factor * 2**(n-1) seconds.
    return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)


class TotpDevice(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (RFC 6238, SHA-1, 6 digits, 30 s). Unconfirmed until a first code is entered.

    `last_t` is the time step of the last accepted code: only a later step is accepted next, so a code
    works once (replay protection), even within its 30 seconds.
    """

    encrypted_key = models.TextField(editable=False, help_text="Fernet token of the hex seed (kvmpanel.secrets)")
    step = models.PositiveSmallIntegerField(default=30)
    digits = models.PositiveSmallIntegerField(default=6)
    tolerance = models.PositiveSmallIntegerField(default=1, help_text="Steps of clock skew accepted either way")
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = _("authenticator app")
        constraints = [models.UniqueConstraint(fields=["user"], name="one_totp_device_per_user")]

    @property
    def bin_key(self) -> bytes:
        return unhexlify(decrypt(self.encrypted_key).encode())

    @property
    def base32_secret(self) -> str:
        """The seed as authenticator apps take it typed in (base32, no padding)."""
        return b32encode(self.bin_key).decode().rstrip("=")

    @property
    def config_url(self) -> str:
        """The otpauth:// URL a QR code carries (Google's Key Uri Format)."""
        issuer = getattr(settings, "OTP_TOTP_ISSUER", "kvmpanel").replace(":", "")
        label = f"{issuer}:{self.user.get_username()}"
        params = {"secret": self.base32_secret, "algorithm": "SHA1", "digits": self.digits, "period": self.step}
        return f"otpauth://totp/{quote(label)}?{urlencode(params)}&issuer={quote(issuer)}"

    def verify_token(self, token) -> bool:
        allowed, _info = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            code = int(str(token).strip())
            key = self.bin_key
        except (ValueError, SecretUnreadable):
            verified = False
        else:
            totp = TOTP(key, self.step, 0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(code, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    def get_throttle_factor(self) -> int:
        return _throttle_factor()


def recovery_code_digest(code: str) -> str:
    """SHA-256 of a recovery code as typed, ignoring case, spaces and dashes."""
    normalized = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normalized.encode()).hexdigest()


class RecoveryCodeDevice(ThrottlingMixin, Device):
    """The user's set of one-time recovery codes (for a lost phone); each code works once."""

    class Meta(Device.Meta):
        verbose_name = _("recovery codes")
        constraints = [models.UniqueConstraint(fields=["user"], name="one_recovery_device_per_user")]

    def verify_token(self, token) -> bool:
        allowed, _info = self.verify_is_allowed()
        if not allowed:
            return False
        # One UPDATE both checks and spends the code, so two requests racing with it cannot both win.
        spent = self.codes.filter(digest=recovery_code_digest(str(token)), used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if spent:
            self.throttle_reset(commit=True)
        else:
            self.throttle_increment(commit=True)
        return bool(spent)

    def get_throttle_factor(self) -> int:
        return _throttle_factor()

    @property
    def remaining(self) -> int:
        return self.codes.filter(used_at__isnull=True).count()


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64, editable=False)
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "digest"], name="unique_recovery_code")]

    def __str__(self) -> str:
        return f"recovery code of {self.device.user} ({'used' if self.used_at else 'unused'})"


class TwoFactorRequirement(models.Model):
    """An administrator requires two-factor authentication of this user, or of every member of this group."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="two_factor_requirement",
    )
    group = models.OneToOneField(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="two_factor_requirement"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True) | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="two_factor_requirement_has_one_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"2FA required of {self.user or f'@{self.group}'}"
