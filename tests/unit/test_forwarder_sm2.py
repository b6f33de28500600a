"""SM2 on gmssl, with the library's pitfalls covered: keys, signatures, encryption in every
format, tampering detected."""

from __future__ import annotations

import itertools

import pytest
from gmssl import sm2 as gm

from forwarder import sm2


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return sm2.generate_keypair()


def test_keypair_is_consistent_and_random(keys: tuple[str, str]) -> None:
    private, public = keys
    assert len(private) == 64 and len(public) == 128
    assert sm2.public_key_of(private) == public
    assert sm2.generate_keypair()[0] != private


def test_generated_public_key_is_on_the_curve(keys: tuple[str, str]) -> None:
    p = int(gm.default_ecc_table["p"], 16)
    a = int(gm.default_ecc_table["a"], 16)
    b = int(gm.default_ecc_table["b"], 16)
    x, y = int(keys[1][:64], 16), int(keys[1][64:], 16)
    assert (y * y - (x * x * x + a * x + b)) % p == 0


@pytest.mark.parametrize(
    ("der", "encoding"), list(itertools.product([False, True], ["hex", "base64"]))
)
def test_sign_and_verify(keys: tuple[str, str], der: bool, encoding: str) -> None:
    fmt = sm2.SignatureFormat(der=der, encoding=encoding)  # type: ignore[arg-type]
    message = b"1700000000000hotline-testsecret"
    signature = sm2.sign(message, keys[0], fmt)
    assert sm2.verify(signature, message, keys[1], fmt)
    assert sm2.verify(signature, message, "04" + keys[1], fmt)
    assert not sm2.verify(signature, message + b"x", keys[1], fmt)
    assert not sm2.verify(signature, message, sm2.generate_keypair()[1], fmt)
    # k is random: two signatures of one message differ, both verify
    assert sm2.sign(message, keys[0], fmt) != signature


def test_signature_made_by_gmssl_itself_verifies(keys: tuple[str, str]) -> None:
    """Interoperability with the library's own SM3withSM2 (the form receivers implement)."""
    crypt = gm.CryptSM2(private_key=keys[0], public_key="")
    crypt.public_key = keys[1]
    theirs = crypt.sign_with_sm3(b"abc")
    assert sm2.verify(theirs, b"abc", keys[1])


@pytest.mark.parametrize(
    ("mode", "prefix", "encoding"),
    list(itertools.product(["C1C3C2", "C1C2C3"], [True, False], ["hex", "base64"])),
)
def test_encrypt_and_decrypt(keys: tuple[str, str], mode: str, prefix: bool, encoding: str) -> None:
    fmt = sm2.CipherFormat(mode=mode, c1_prefix=prefix, encoding=encoding)  # type: ignore[arg-type]
    plain = '{"projectNo":"GD0001","satisfaction":5,"evalDetail":"1,3","x":"满意"}'.encode()
    cipher = sm2.encrypt(plain, keys[1], fmt)
    assert sm2.decrypt(cipher, keys[0], fmt) == plain
    assert sm2.encrypt(plain, keys[1], fmt) != cipher  # fresh k each time


def test_gmssl_decrypts_our_ciphertext(keys: tuple[str, str]) -> None:
    fmt = sm2.CipherFormat(mode="C1C3C2", c1_prefix=False, encoding="hex")
    cipher = sm2.encrypt(b"hello province", keys[1], fmt)
    crypt = gm.CryptSM2(private_key=keys[0], public_key="", mode=1)
    crypt.public_key = keys[1]
    assert crypt.decrypt(bytes.fromhex(cipher)) == b"hello province"


def test_tampered_ciphertext_is_refused(keys: tuple[str, str]) -> None:
    fmt = sm2.CipherFormat(encoding="hex")
    cipher = bytearray(bytes.fromhex(sm2.encrypt(b"payload", keys[1], fmt)))
    cipher[-1] ^= 1
    with pytest.raises(sm2.Sm2Error, match="C3"):
        sm2.decrypt(bytes(cipher).hex(), keys[0], fmt)
    with pytest.raises(sm2.Sm2Error):
        sm2.decrypt("zz", keys[0], fmt)


@pytest.mark.parametrize("bad", ["", "04", "abc", "g" * 128, "05" + "1" * 128])
def test_malformed_public_keys(bad: str) -> None:
    with pytest.raises(sm2.Sm2Error):
        sm2.normalise_public_key(bad)


@pytest.mark.parametrize("bad", ["", "0" * 64, "x" * 64, "1" * 63, "F" * 64])
def test_malformed_private_keys(bad: str) -> None:
    with pytest.raises(sm2.Sm2Error):
        sm2.public_key_of(bad)


def test_public_key_starting_with_04_is_kept_whole() -> None:
    """gmssl's constructor strips any leading 0s and 4s; a key whose x starts with "04…"
    would silently be corrupted there."""
    key = "04" + "40" * 63
    assert sm2.normalise_public_key(key) == key  # 128 digits: not a prefix, part of x
    assert sm2._crypt("", key).public_key == key


@pytest.mark.parametrize("mode,prefix,encoding", [("C1C3C2", True, "base64"),
                                                  ("C1C2C3", False, "hex")])
def test_many_encrypted_at_once_each_decrypt(
    keys: tuple[str, str], mode: str, prefix: bool, encoding: str
) -> None:
    """encrypt_many (the point arithmetic of all of them together) makes ciphertexts that
    decrypt, each with its own k, and that gmssl decrypts too."""
    fmt = sm2.CipherFormat(mode=mode, c1_prefix=prefix, encoding=encoding)  # type: ignore[arg-type]
    plains = [f'{{"projectNo":"GD{n:04d}","x":"满意"}}'.encode() for n in range(40)] + [b"x"]
    ciphers = sm2.encrypt_many(plains, keys[1], fmt)
    assert [sm2.decrypt(c, keys[0], fmt) for c in ciphers] == plains
    c1s = {c[:130] for c in ciphers}
    assert len(c1s) == len(plains)  # a fresh k for each
    raw = sm2.encrypt_many([b"hello province"], keys[1], sm2.CipherFormat(c1_prefix=False,
                                                                          encoding="hex"))
    crypt = gm.CryptSM2(private_key=keys[0], public_key="", mode=1)
    crypt.public_key = keys[1]
    assert crypt.decrypt(bytes.fromhex(raw[0])) == b"hello province"
    with pytest.raises(sm2.Sm2Error):
        sm2.encrypt_many([b"a", b""], keys[1])
