"""Helpers for the two-factor tests: compute codes as an authenticator app would, enroll a user."""

import time

from django.test import Client
from django_otp.oath import TOTP

from apps.accounts.otp import services
from apps.accounts.otp.models import TotpDevice


def code_for(device_or_secret, *, steps_ahead: int = 0) -> str:
    """The code an app shows `steps_ahead` time steps from now (each code is accepted once, so a test that
    needs a second code takes the next step's; the device accepts one step of skew)."""
    if isinstance(device_or_secret, TotpDevice):
        key = device_or_secret.bin_key
    else:
        from base64 import b32decode

        secret = device_or_secret.upper()
        key = b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, step=30, t0=0, digits=6, drift=0)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def enroll(user) -> tuple[TotpDevice, list[str]]:
    """Give `user` a confirmed authenticator and recovery codes, through the services."""
    device = services.begin_enrollment(actor=user)
    return services.confirm_enrollment(actor=user, code=code_for(device, steps_ahead=-1))


def log_in_with_code(client: Client, username: str, password: str, code: str, **extra):
    client.post("/login/", {"username": username, "password": password}, **extra)
    return client.post("/login/verify/", {"code": code}, **extra)
