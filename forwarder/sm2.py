"""SM2 (GB/T 32918) signing and encryption for the provincial envelope, on ``gmssl``.

Three things in gmssl 3.2 need care, so nothing else in the project calls it directly:

* its random numbers come from ``random.choice`` (not a CSPRNG); an SM2 signature or
  ciphertext made with a guessable ``k`` gives the private key / plaintext away, so we draw
  ``k`` from :mod:`secrets` and do the encryption's point arithmetic here;
* ``CryptSM2.__init__`` strips a leading ``04`` with ``str.lstrip("04")``, which also eats
  any leading 0 and 4 digits of the x coordinate; we set the key ourselves;
* ``decrypt`` never checks C3 (the SM3 tag), so a corrupted ciphertext decrypts to garbage;
  ours checks it.

Keys are hex: the private key 64 digits, the public key 128 digits (x||y), optionally with the
uncompressed-point prefix ``04``. Signatures are SM3withSM2 with the default user id
``1234567812345678``, the form Java (BouncyCastle) and most provincial platforms use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from gmssl import sm2, sm3

from . import sm2_curve

_TABLE = sm2.default_ecc_table
_N = int(_TABLE["n"], 16)
_COORD = 64  # hex digits of one coordinate

CipherMode = Literal["C1C3C2", "C1C2C3"]
Encoding = Literal["hex", "base64"]


class Sm2Error(ValueError):
    """A key, signature or ciphertext is malformed or does not verify."""


def _scalar() -> str:
    return format(secrets.randbelow(_N - 1) + 1, "064x")


def normalise_public_key(key: str) -> str:
    key = key.strip().lower()
    if len(key) == 2 * _COORD + 2 and key.startswith("04"):
        key = key[2:]
    if len(key) != 2 * _COORD:
        raise Sm2Error("an SM2 public key is 128 hex digits (x||y), optionally prefixed by 04")
    try:
        bytes.fromhex(key)
    except ValueError as exc:
        raise Sm2Error("an SM2 public key must be hexadecimal") from exc
    return key


def _check_private(key: str) -> str:
    key = key.strip().lower()
    try:
        value = int(key, 16)
    except ValueError as exc:
        raise Sm2Error("an SM2 private key must be hexadecimal") from exc
    if len(key) != _COORD or not 1 <= value < _N - 1:
        raise Sm2Error("an SM2 private key is 64 hex digits in 1..n-2")
    return key


def _crypt(private_key: str, public_key: str, mode: int = 1, asn1: bool = False) -> sm2.CryptSM2:
    crypt = sm2.CryptSM2(private_key=private_key, public_key="", mode=mode, asn1=asn1)
    crypt.public_key = public_key  # bypasses the lstrip("04") in __init__
    return crypt


def public_key_of(private_key: str) -> str:
    key = _check_private(private_key)
    point = _crypt(key, "")._kg(int(key, 16), _TABLE["g"])
    if point is None:
        raise Sm2Error("could not derive the public key")
    return str(point)


def generate_keypair() -> tuple[str, str]:
    """(private, public) in hex; public without the 04 prefix."""
    private = _scalar()
    return private, public_key_of(private)


def _encode(raw: bytes, encoding: Encoding) -> str:
    return raw.hex() if encoding == "hex" else base64.b64encode(raw).decode("ascii")


def _decode(text: str, encoding: Encoding) -> bytes:
    try:
        return bytes.fromhex(text) if encoding == "hex" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise Sm2Error(f"not valid {encoding}") from exc


@dataclass(frozen=True)
class SignatureFormat:
    der: bool = False  # ASN.1 DER SEQUENCE{r, s} (Java's default) instead of raw r||s
    encoding: Encoding = "hex"


@dataclass(frozen=True)
class CipherFormat:
    mode: CipherMode = "C1C3C2"  # GM/T 0009-2012 order; older systems use C1C2C3
    c1_prefix: bool = True  # BouncyCastle writes C1 as an uncompressed point: 04||x||y
    encoding: Encoding = "base64"


def sign(data: bytes, private_key: str, fmt: SignatureFormat = SignatureFormat()) -> str:
    private_key = _check_private(private_key)
    crypt = _crypt(private_key, _public_key_cached(private_key), asn1=fmt.der)
    for _ in range(8):  # sign() gives None for the rare unusable k; draw again
        signature = crypt.sign_with_sm3(data, _scalar())
        if signature:
            return _encode(bytes.fromhex(signature), fmt.encoding)
    raise Sm2Error("could not sign")  # pragma: no cover - probability ~2^-250


@lru_cache(maxsize=8)
def _public_key_cached(private_key: str) -> str:
    return public_key_of(private_key)


def verify(
    signature: str, data: bytes, public_key: str, fmt: SignatureFormat = SignatureFormat()
) -> bool:
    crypt = _crypt("", normalise_public_key(public_key), asn1=fmt.der)
    try:
        return bool(crypt.verify_with_sm3(_decode(signature, fmt.encoding).hex(), data))
    except (ValueError, IndexError, TypeError):
        return False


def _sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def _kdf(z: bytes, length: int) -> bytes:
    """GB/T 32918.4 KDF on SM3: SM3(z || ct) for ct = 1, 2, … (32-bit big-endian)."""
    out = b"".join(_sm3(z + ct.to_bytes(4, "big")) for ct in range(1, -(-length // 32) + 1))
    return out[:length]


@lru_cache(maxsize=8)
def _receiver_point(public_key: str) -> sm2_curve.Affine:
    key = normalise_public_key(public_key)
    point = (int(key[:_COORD], 16), int(key[_COORD:], 16))
    if not sm2_curve.on_curve(point):
        raise Sm2Error("the SM2 public key is not a point on the curve")
    return point


def warm(public_key: str) -> None:
    """Build the point tables (G and the receiver's key, ~0.2 s) now, at start-up, rather
    than in the first envelope."""
    sm2_curve.multiply(1, sm2_curve.G)
    sm2_curve.multiply(1, _receiver_point(public_key))


def encrypt(plain: bytes, public_key: str, fmt: CipherFormat = CipherFormat()) -> str:
    """SM2 public-key encryption (GB/T 32918.4). The point arithmetic is ours
    (forwarder.sm2_curve, tables for G and the receiver's key), SM3 is OpenSSL's."""
    if not plain:
        raise Sm2Error("nothing to encrypt")
    receiver = _receiver_point(public_key)
    for _ in range(8):
        k = int(_scalar(), 16)
        found = _ciphertext(
            plain, sm2_curve.multiply(k, sm2_curve.G), sm2_curve.multiply(k, receiver), fmt
        )
        if found is not None:
            return found
    raise Sm2Error("could not encrypt")  # pragma: no cover


def encrypt_many(
    plains: Sequence[bytes], public_key: str, fmt: CipherFormat = CipherFormat()
) -> list[str]:
    """:func:`encrypt` of each plaintext, the point multiplications of all of them done
    together (sm2_curve.multiply_many: about half the time each)."""
    if not all(plains):
        raise Sm2Error("nothing to encrypt")
    receiver = _receiver_point(public_key)
    ks = [int(_scalar(), 16) for _ in plains]
    products = sm2_curve.multiply_many(
        [(k, sm2_curve.G) for k in ks] + [(k, receiver) for k in ks]
    )
    n = len(plains)
    out = []
    for i, plain in enumerate(plains):
        found = _ciphertext(plain, products[i], products[n + i], fmt)
        # a k to draw again (the KDF gave zeros, ~2^-256): this one alone
        out.append(found if found is not None else encrypt(plain, public_key, fmt))
    return out


def _ciphertext(
    plain: bytes, c1: sm2_curve.Affine | None, shared: sm2_curve.Affine | None,
    fmt: CipherFormat,
) -> str | None:
    """The ciphertext of ``plain`` for C1 = k·G and the shared point k·Q; None when this k
    cannot be used (the standard's steps A4 and A5: choose another)."""
    if c1 is None or shared is None:  # pragma: no cover - k·Q at infinity, ~2^-256
        return None
    x2 = shared[0].to_bytes(32, "big")
    y2 = shared[1].to_bytes(32, "big")
    t = _kdf(x2 + y2, len(plain))
    if not any(t):  # pragma: no cover - the KDF gave all zeros, ~2^-256
        return None
    # one big-integer XOR, not a Python loop over the bytes
    c2 = (int.from_bytes(plain, "big") ^ int.from_bytes(t, "big")).to_bytes(len(plain), "big")
    c3 = _sm3(x2 + plain + y2)
    c1_bytes = c1[0].to_bytes(32, "big") + c1[1].to_bytes(32, "big")
    body = c1_bytes + (c3 + c2 if fmt.mode == "C1C3C2" else c2 + c3)
    raw = (b"\x04" if fmt.c1_prefix else b"") + body
    return _encode(raw, fmt.encoding)


def decrypt(cipher: str, private_key: str, fmt: CipherFormat = CipherFormat()) -> bytes:
    """For tests and tooling (the receiver's side); checks the C3 tag."""
    private_key = _check_private(private_key)
    data = _decode(cipher, fmt.encoding).hex()
    if fmt.c1_prefix:
        if not data.startswith("04"):
            raise Sm2Error("ciphertext does not start with the 04 point prefix")
        data = data[2:]
    c1, rest = data[: 2 * _COORD], data[2 * _COORD :]
    if len(rest) <= 64:
        raise Sm2Error("ciphertext too short")
    c3, c2 = (rest[:64], rest[64:]) if fmt.mode == "C1C3C2" else (rest[-64:], rest[:-64])
    crypt = _crypt(private_key, public_key_of(private_key))
    xy = crypt._kg(int(private_key, 16), c1)
    if xy is None:
        raise Sm2Error("C1 is not a point on the curve")
    t = sm3.sm3_kdf(xy.encode("utf8"), len(c2) // 2)
    msg = format(int(c2, 16) ^ int(t, 16), f"0{len(c2)}x")
    tag = sm3.sm3_hash(list(bytes.fromhex(xy[:_COORD] + msg + xy[_COORD:])))
    if not hmac.compare_digest(tag, c3.lower()):
        raise Sm2Error("ciphertext tag (C3) does not match")
    return bytes.fromhex(msg)
