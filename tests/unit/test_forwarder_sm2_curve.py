"""Our SM2 point arithmetic (forwarder.sm2_curve, the fast path of the envelope's encryption)
gives exactly gmssl's results, for the base point and for a receiver's public key."""

from __future__ import annotations

import secrets

from gmssl import sm2 as gmssl_sm2

from forwarder import sm2_curve


def _gmssl(k: int, point_hex: str) -> str:
    crypt = gmssl_sm2.CryptSM2(private_key="1" * 64, public_key="", mode=1)
    return str(crypt._kg(k, point_hex))


def _hex(point: sm2_curve.Affine | None) -> str:
    assert point is not None
    return f"{point[0]:064x}{point[1]:064x}"


def test_base_point_multiples_match_gmssl() -> None:
    g = gmssl_sm2.default_ecc_table["g"]
    for k in [1, 2, 15, 16, 17, 2**255 + 12345, sm2_curve.N - 1] + [
        secrets.randbelow(sm2_curve.N - 1) + 1 for _ in range(10)
    ]:
        assert _hex(sm2_curve.multiply(k, sm2_curve.G)) == _gmssl(k, g)


def test_multiples_of_a_public_key_match_gmssl_and_stay_on_the_curve() -> None:
    key = sm2_curve.multiply(secrets.randbelow(sm2_curve.N - 1) + 1, sm2_curve.G)
    assert key is not None and sm2_curve.on_curve(key)
    for _ in range(10):
        k = secrets.randbelow(sm2_curve.N - 1) + 1
        product = sm2_curve.multiply(k, key)
        assert product is not None and sm2_curve.on_curve(product)
        assert _hex(product) == _gmssl(k, _hex(key))
    assert sm2_curve.multiply(sm2_curve.N, sm2_curve.G) is None  # n·G is the infinity


def test_many_products_at_once_are_the_single_products() -> None:
    """multiply_many (lock-step affine additions, one inversion per window) gives exactly
    what multiply gives, for G and a key together, including scalars whose windows are
    zero (a job that starts late or skips windows) and the largest one."""
    key = sm2_curve.multiply(secrets.randbelow(sm2_curve.N - 1) + 1, sm2_curve.G)
    assert key is not None
    scalars = [1, 2, 255, 256, 2**255, 2**248 + 1, 0xFF << 200, sm2_curve.N - 1] + [
        secrets.randbelow(sm2_curve.N - 1) + 1 for _ in range(20)
    ]
    jobs = [(k, point) for k in scalars for point in (sm2_curve.G, key)]
    assert sm2_curve.multiply_many(jobs) == [sm2_curve.multiply(k, p) for k, p in jobs]
    assert sm2_curve.multiply_many([]) == []
    assert sm2_curve.multiply_many([(sm2_curve.N, sm2_curve.G)]) == [None]  # the infinity


def test_the_sum_of_two_points_with_the_same_x() -> None:
    """The one case the shared inversion cannot take: the double, or the infinity."""
    g = sm2_curve.G
    assert sm2_curve._add_exactly(g, g) == sm2_curve.multiply(2, g)
    assert sm2_curve._add_exactly(g, (g[0], sm2_curve.P - g[1])) is None
