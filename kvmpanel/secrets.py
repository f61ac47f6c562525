"""Encrypt small secrets the panel must read back (a TOTP seed, a host's password), so the database
never holds them in clear.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with keys from `KVMPANEL_SECRET_ENCRYPTION_KEY`
(or `KVMPANEL_SECRET_ENCRYPTION_KEY_FILE`): a comma-separated list of Fernet keys (urlsafe base64 of
32 bytes, `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
The first key encrypts; every key decrypts, so a key is rotated by putting the new one first and
re-saving the rows (`encrypt(decrypt(old))`) before dropping the old key.

Without that setting the key is derived from SECRET_KEY (HKDF-SHA256 with a fixed label), which is
enough for development and small installs; but then changing SECRET_KEY makes every stored secret
unreadable (`decrypt` raises `SecretUnreadable`): production should set its own key.

Secrets stored by one-way need (passwords, API tokens, recovery codes) are hashed instead, not here.
"""

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Changing this label changes every derived key: it names what the derived key is for.
_DERIVATION_LABEL = b"kvmpanel secret encryption v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted: wrong or rotated-away key, or a damaged value."""


def derive_key(secret_key: str) -> bytes:
    """A Fernet key derived from `secret_key` (the fallback when no key is configured)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_LABEL).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived)


@cache
def _fernet(configured: str, secret_key: str) -> MultiFernet:
    keys = [key.strip() for key in configured.split(",") if key.strip()]
    if not keys:
        return MultiFernet([Fernet(derive_key(secret_key))])
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(
            "KVMPANEL_SECRET_ENCRYPTION_KEY must be Fernet keys (urlsafe base64 of 32 bytes), comma-separated"
        ) from error


def _current() -> MultiFernet:
    # Read the settings on every call (cached per value), so override_settings in tests takes effect.
    return _fernet(getattr(settings, "KVMPANEL_SECRET_ENCRYPTION_KEY", "") or "", settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    """The Fernet token (ASCII text) for `plaintext`; a new random IV each time."""
    return _current().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """The plaintext of a token made by `encrypt`; raises SecretUnreadable if no key opens it."""
    try:
        return _current().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as error:
        raise SecretUnreadable("the stored secret cannot be decrypted with the configured keys") from error
