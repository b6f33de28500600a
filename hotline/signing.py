"""The one HMAC-SHA256 request signature the service sends: over ``<timestamp><separator><body>``
with a shared secret. The forwarder signs records for the provincial platform with it (the
separator and encoding are the profile's), and the 差评 webhooks sign their events with it
(``.``, hex)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache
from typing import Literal


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC with its key already digested: a copy per message costs ~30 % less than
    keying each (issue 13: thousands of records a second; OpenSSL 3's one-shot
    ``hmac.digest`` is slower still)."""
    return hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)


def hmac_sha256(secret: str, timestamp: str, body: bytes, *, separator: str = "",
                encoding: Literal["hex", "base64"] = "hex") -> str:
    mac = _keyed(secret).copy()
    mac.update(timestamp.encode() + separator.encode() + body)
    digest = mac.digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
