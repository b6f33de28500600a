"""The two ways a record travels (DOMAIN.md): JSON with an HMAC-SHA256 signature header, or
the SM2 envelope ``{appMark, time, sign, params}``. Building a request is pure; sending it is
the worker's job."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from hotline.settings import Settings
from hotline.signing import hmac_sha256

from . import sm2
from .profile import Profile, ProfileError, TransportConfig


@dataclass(frozen=True)
class Secrets:
    hmac_secret: str = ""
    app_mark: str = ""
    app_word: str = ""
    sm2_private_key: str = ""
    sm2_receiver_public_key: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Secrets:
        return cls(
            hmac_secret=settings.forwarder_hmac_secret,
            app_mark=settings.forwarder_app_mark,
            app_word=settings.forwarder_app_word,
            sm2_private_key=settings.forwarder_sm2_private_key,
            sm2_receiver_public_key=settings.forwarder_sm2_receiver_public_key,
        )

    def __repr__(self) -> str:  # never print secrets by accident
        return "Secrets(***)"


class Request(NamedTuple):  # one per record sent: a tuple is the cheapest to make
    body: bytes
    headers: dict[str, str]


def check(profile: Profile, secrets: Secrets) -> None:
    """Refuse to start with a transport that cannot sign or encrypt; names the setting."""
    kind = profile.transport.kind
    if kind == "json_hmac" and not secrets.hmac_secret:
        raise ProfileError(f"profile {profile.name} signs with HMAC: set forwarder_hmac_secret")
    if kind == "sm2_envelope":
        for setting, value in (
            ("forwarder_app_mark", secrets.app_mark),
            ("forwarder_app_word", secrets.app_word),
            ("forwarder_sm2_private_key", secrets.sm2_private_key),
            ("forwarder_sm2_receiver_public_key", secrets.sm2_receiver_public_key),
        ):
            if not value:
                raise ProfileError(f"profile {profile.name} uses the SM2 envelope: set {setting}")
        try:
            sm2.public_key_of(secrets.sm2_private_key)
            sm2.normalise_public_key(secrets.sm2_receiver_public_key)
        except sm2.Sm2Error as exc:
            raise ProfileError(f"SM2 key setting: {exc}") from exc


# ensure_ascii=False: Chinese stays readable; compact separators: the signed bytes are exactly
# the bytes sent. One encoder for the process: json.dumps with options builds one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(record: dict[str, Any]) -> bytes:
    return _ENCODER.encode(record).encode("utf-8")


def timestamp(cfg: TransportConfig, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return str(int(now * 1000)) if cfg.timestamp == "ms" else str(int(now))


def hmac_signature(secret: str, ts: str, body: bytes, cfg: TransportConfig) -> str:
    return hmac_sha256(secret, ts, body, separator=cfg.signature_separator,
                       encoding=cfg.signature_encoding)


def _sign_format(cfg: TransportConfig) -> sm2.SignatureFormat:
    return sm2.SignatureFormat(der=cfg.sign_der, encoding=cfg.sign_encoding)


def _cipher_format(cfg: TransportConfig) -> sm2.CipherFormat:
    return sm2.CipherFormat(
        mode=cfg.cipher_mode, c1_prefix=cfg.cipher_c1_prefix, encoding=cfg.cipher_encoding
    )


def envelope_sign_input(ts: str, app_mark: str, app_word: str) -> bytes:
    return (ts + app_mark + app_word).encode("utf-8")


@lru_cache(maxsize=4)
def _envelope_signature(
    ts: str, app_mark: str, app_word: str, private_key: str, fmt: sm2.SignatureFormat
) -> str:
    return sm2.sign(envelope_sign_input(ts, app_mark, app_word), private_key, fmt)


def envelope_time(cfg: TransportConfig, now: float | None = None) -> str:
    """The envelope's time: whole seconds, so that one signature serves every envelope of
    the same second (the signature covers time + appMark + appWord only, not the record)."""
    return timestamp(cfg, math.floor(time.time() if now is None else now))


def envelope_signature(ts: str, cfg: TransportConfig, secrets: Secrets) -> str:
    """The signature of the envelopes of time ``ts`` (SM2 signing: milliseconds of pure
    Python, made once per second and kept)."""
    return _envelope_signature(
        ts, secrets.app_mark, secrets.app_word, secrets.sm2_private_key, _sign_format(cfg)
    )


def envelope_params(plain: bytes, cfg: TransportConfig, secrets: Secrets) -> str:
    """The record's JSON ``plain`` encrypted to the province's key: the envelope's costly
    part (two point multiplications in pure Python), and independent of the time."""
    return sm2.encrypt(plain, secrets.sm2_receiver_public_key, _cipher_format(cfg))


def envelope_params_many(
    plains: list[bytes], cfg: TransportConfig, secrets: Secrets
) -> list[str]:
    """:func:`envelope_params` of many records, their point arithmetic done together."""
    return sm2.encrypt_many(plains, secrets.sm2_receiver_public_key, _cipher_format(cfg))


def headers_for(cfg: TransportConfig, key: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if cfg.idempotency_header:
        headers[cfg.idempotency_header] = key
    return headers


@lru_cache(maxsize=8)
def _envelope_frame(
    app_mark_name: str, time_name: str, sign_name: str, params_name: str, app_mark: str
) -> tuple[str, str, str, str]:
    """The envelope's JSON around its time, signature and params, in :func:`dumps`'s form:
    ``{"appMark":"…","time":"`` + time + ``","sign":"`` + sign + ``","params":"`` + params
    + ``"}``."""
    def key(name: str) -> str:
        return _ENCODER.encode(name)

    return (
        f"{{{key(app_mark_name)}:{_ENCODER.encode(app_mark)},{key(time_name)}:\"",
        f"\",{key(sign_name)}:\"",
        f"\",{key(params_name)}:\"",
        "\"}",
    )


def envelope_request(
    key: str, ts: str, signature: str, params: str, cfg: TransportConfig, secrets: Secrets
) -> Request:
    """The request of one envelope, from its parts. The body is the JSON of
    ``{appMark, time, sign, params}`` put together from text, not encoded field by field
    (issue 13: the JSON encoder scanned the long ciphertext for characters to escape; the
    time is digits, the signature and the ciphertext hex or base64, none of which JSON
    escapes)."""
    names = cfg.envelope_fields
    head, after_time, after_sign, tail = _envelope_frame(
        names["app_mark"], names["time"], names["sign"], names["params"], secrets.app_mark
    )
    body = f"{head}{ts}{after_time}{signature}{after_sign}{params}{tail}".encode()
    return Request(body=body, headers=headers_for(cfg, key))


def build(
    record: dict[str, Any], key: str, profile: Profile, secrets: Secrets, now: float | None = None
) -> Request:
    """The request for one record. CPU-heavy for SM2 (pure Python): the forwarder builds
    envelopes off its event loop (forwarder.envelopes)."""
    cfg = profile.transport
    if cfg.kind == "json_hmac":
        ts = timestamp(cfg, now)
        headers = headers_for(cfg, key)
        body = dumps(record)
        headers[cfg.timestamp_header] = ts
        headers[cfg.signature_header] = hmac_signature(secrets.hmac_secret, ts, body, cfg)
        if cfg.app_id_header:
            headers[cfg.app_id_header] = secrets.app_mark
        return Request(body=body, headers=headers)
    ts = envelope_time(cfg, now)
    return envelope_request(
        key, ts, envelope_signature(ts, cfg, secrets),
        envelope_params(dumps(record), cfg, secrets), cfg, secrets,
    )
