"""Citizens' phone numbers are personal data (DOMAIN.md rule 8).

At rest a number is stored three ways, never in the clear: encrypted (Fernet, so the dialer can
recover it), a keyed hash (HMAC-SHA256, for look-ups such as the do-not-call list) and a mask
(for people and logs). The key lives in a file outside the database, created on first start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

_DIGITS = re.compile(r"\D")


def normalise_number(number: str) -> str:
    """Keep digits and a leading +; callers type spaces and dashes."""
    number = number.strip()
    plus = "+" if number.startswith("+") else ""
    return plus + _DIGITS.sub("", number)


def mask_number(number: str | None) -> str:
    """``138****5678``: enough for a person to recognise a call, not to dial it.

    Mobiles and numbers with an area code (10+ digits) keep the 3-digit prefix (carrier or
    area, which says little about the person) and the last 4. A local landline (7–9 digits,
    no area code) hides its middle: at least 4 digits and at least half of them, the rest
    split between both ends (``65****56``): keeping the last 4 as well would leave 1 digit
    hidden, 10 guesses from the full number. 6 digits or fewer are service numbers
    (12345, 95xxx), shown but for their first digits."""
    if not number:
        return ""
    digits = normalise_number(number)
    n = len(digits.lstrip("+"))
    if n <= 4:
        return "*" * len(digits)
    if n <= 6:
        return "*" * (len(digits) - 4) + digits[-4:]
    if n <= 9:
        hidden = max(4, (n + 1) // 2)
        head = (n - hidden) // 2
        tail = n - hidden - head
        plus = "+" if digits.startswith("+") else ""
        body = digits.lstrip("+")
        return plus + body[:head] + "*" * hidden + (body[-tail:] if tail else "")
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


@dataclass(frozen=True)
class ProtectedNumber:
    encrypted: str
    digest: str
    masked: str


class PhoneVault:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("phone key must be 32 bytes")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._hash_key = hashlib.sha256(b"hotline-phone-hash\x00" + key).digest()

    @classmethod
    def from_key_file(cls, path: Path) -> PhoneVault:
        """Load the key, creating it (mode 0600) the first time."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.b64encode(os.urandom(32)))
        return cls(base64.b64decode(path.read_bytes().strip()))

    def digest(self, number: str) -> str:
        return hmac.new(
            self._hash_key, normalise_number(number).encode(), hashlib.sha256
        ).hexdigest()

    def protect(self, number: str) -> ProtectedNumber:
        clean = normalise_number(number)
        return ProtectedNumber(
            encrypted=self._fernet.encrypt(clean.encode()).decode(),
            digest=self.digest(clean),
            masked=mask_number(clean),
        )

    def reveal(self, encrypted: str) -> str:
        try:
            return self._fernet.decrypt(encrypted.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("phone number cannot be decrypted with this key") from exc
