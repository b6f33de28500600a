"""The one HMAC-SHA256 request signature the service sends: over ``<timestamp><separator><body>``
with a shared secret. The forwarder signs records for the provincial platform with it (the
separator and encoding are the profile's), and the 差评 webhooks sign their events with it
(``.``, hex)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal


def hmac_sha256(secret: str, timestamp: str, body: bytes, *, separator: str = "",
                encoding: Literal["hex", "base64"] = "hex") -> str:
    message = timestamp.encode() + separator.encode() + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
