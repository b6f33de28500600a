"""The 差评 webhook signature is what its receivers are told (bad_ratings/webhooks.py):
HMAC-SHA256 of ``<timestamp>.<body>``, hex, in ``X-Hotline-Signature: t=…,v1=…``; checked
against hmac itself, not against the function that makes it."""

from __future__ import annotations

import hashlib
import hmac

from bad_ratings import webhooks


def test_webhook_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event":"bad_rating.opened"}'
    expected = hmac.new(b"s3cret", b"1767225600." + body, hashlib.sha256).hexdigest()
    assert webhooks.signature("s3cret", "1767225600", body) == expected
    assert webhooks.verify("s3cret", f"t=1767225600,v1={expected}", body)
    assert not webhooks.verify("s3cret", f"t=1767225601,v1={expected}", body)
