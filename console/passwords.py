"""Password hashing with argon2id (argon2-cffi, the maintained binding of the PHC winner).

The library's defaults (RFC 9106 low-memory profile) are used on purpose: they are reviewed by
its maintainers and move with them, and ``needs_rehash`` upgrades stored hashes at the next
login when they change.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()

MIN_LENGTH = 10


class WeakPassword(ValueError):
    """A new password is too short to be set."""


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


def generate_password() -> str:
    """A random password for a first admin or a reset: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


#: Verified against when the user does not exist, so that "no such user" takes as long as
#: "wrong password" and the login cannot be used to find out user names.
DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(12))
