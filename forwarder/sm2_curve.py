"""Scalar multiplication on the SM2 curve (GB/T 32918.5 parameters) with Python integers,
fast enough for the forwarder's encryption (issue 13: gmssl's string-based arithmetic cost
~30 ms per multiplication, ~35 envelopes/s).

Every multiplication the forwarder does is by a fixed point: the base point G and the
province's public key. For such a point a table of ``j · 256^i · Q`` (32 windows × 255 points,
affine, ~0.1 s to build with one inversion per window) is computed once and cached, after
which ``k · Q`` is 32 mixed additions, with no doubling at all (issue 13: 8-bit windows halve
the additions of the 4-bit ones; ~3 MB for the two tables). Not constant-time: the scalars
are fresh per message (``secrets``) and the code runs on the sender's own machine, where a
timing observer is not in the threat model; the private key is never multiplied here
(signing stays on gmssl, once a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

Affine = tuple[int, int]
Jacobian = tuple[int, int, int]  # z == 0: the point at infinity

WINDOW = 8
WINDOWS = 256 // WINDOW


def on_curve(point: Affine) -> bool:
    x, y = point
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _double(p: Jacobian) -> Jacobian:
    x, y, z = p
    if z == 0 or y == 0:
        return (1, 1, 0)
    # a = -3: M = 3 (X - Z²)(X + Z²)
    zz = z * z % P
    m = 3 * (x - zz) * (x + zz) % P
    yy = y * y % P
    s = 4 * x * yy % P
    x3 = (m * m - 2 * s) % P
    y3 = (m * (s - x3) - 8 * yy * yy) % P
    z3 = 2 * y * z % P
    return (x3, y3, z3)


def _add_affine(p: Jacobian, q: Affine) -> Jacobian:
    """p + q, q affine (mixed addition)."""
    x1, y1, z1 = p
    x2, y2 = q
    if z1 == 0:
        return (x2, y2, 1)
    z1z1 = z1 * z1 % P
    u2 = x2 * z1z1 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - x1) % P
    r = (s2 - y1) % P
    if h == 0:
        return _double(p) if r == 0 else (1, 1, 0)
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - y1 * hhh) % P
    z3 = z1 * h % P
    return (x3, y3, z3)


def _affine(p: Jacobian) -> Affine | None:
    x, y, z = p
    if z == 0:
        return None
    zi = pow(z, -1, P)
    zi2 = zi * zi % P
    return (x * zi2 % P, y * zi2 * zi % P)


def _affine_many(points: list[Jacobian]) -> list[Affine | None]:
    """Many points to affine with one inversion (Montgomery's trick): inversions are the
    expensive step, and a table row has 255 points."""
    prefix: list[int] = []
    acc = 1
    for _, _, z in points:
        prefix.append(acc)
        if z:
            acc = acc * z % P
    inv = pow(acc, -1, P)
    out: list[Affine | None] = [None] * len(points)
    for n in range(len(points) - 1, -1, -1):
        x, y, z = points[n]
        if not z:
            continue
        zi = inv * prefix[n] % P  # 1 / z
        inv = inv * z % P
        zi2 = zi * zi % P
        out[n] = (x * zi2 % P, y * zi2 * zi % P)
    return out


@lru_cache(maxsize=8)
def _table(point: Affine) -> tuple[tuple[Affine | None, ...], ...]:
    """``table[i][j] = j · 256^i · point`` (j = 0 is unused), affine."""
    rows = []
    base: Affine | None = point
    for _ in range(WINDOWS):
        multiples: list[Jacobian] = []
        acc: Jacobian = (1, 1, 0)
        for _ in range(1, 1 << WINDOW):
            acc = _add_affine(acc, base) if base else acc
            multiples.append(acc)
        row = _affine_many(multiples)
        rows.append((None, *row))
        # the next window's base: 256 · base, which is the double of 128 · base
        half = row[(1 << (WINDOW - 1)) - 1]
        base = _affine(_double((half[0], half[1], 1))) if half else None
    return tuple(rows)


def multiply(k: int, point: Affine) -> Affine | None:
    """``k · point`` for 0 < k < N; None for the point at infinity."""
    table = _table(point)
    acc: Jacobian = (1, 1, 0)
    mask = (1 << WINDOW) - 1
    for i in range(WINDOWS):
        digit = (k >> (WINDOW * i)) & mask
        if digit:
            q = table[i][digit]
            if q is not None:
                acc = _add_affine(acc, q)
    return _affine(acc)


def _add_exactly(p: Affine, q: Affine) -> Affine | None:
    """p + q for two affine points of the same x (the one case the shared inversion of
    :func:`multiply_many` cannot take): 2p, or the infinity."""
    return _affine(_add_affine((p[0], p[1], 1), q))


def multiply_many(jobs: Sequence[tuple[int, Affine]]) -> list[Affine | None]:
    """``k · point`` for each ``(k, point)`` (0 < k < N), as :func:`multiply` gives them, for
    many at once (issue 13: an envelope needs k·G and k·Q, and a batch has dozens).

    The jobs advance window by window together, in affine coordinates: an addition is then
    λ = (y2 − y1) / (x2 − x1) and three multiplications, and the one costly step, the
    inversion, is shared by every job of the window (Montgomery's trick: three
    multiplications each and one inversion for all). About 6 multiplications an addition
    instead of the mixed Jacobian addition's 11, and no conversion at the end: in pure
    Python, about half the time of :func:`multiply` per product."""
    n = len(jobs)
    rows = [_table(point) for _, point in jobs]
    digits = [k.to_bytes(WINDOWS, "little") for k, _ in jobs]  # 8-bit windows: its bytes
    xs = [0] * n
    ys = [0] * n
    started = [False] * n  # False: the product so far is the infinity
    for i in range(WINDOWS):
        # the jobs adding a point in this window, and the points they add
        idx: list[int] = []
        qx: list[int] = []
        qy: list[int] = []
        for j in range(n):
            d = digits[j][i]
            if not d:
                continue
            q = rows[j][i][d]
            if q is None:  # pragma: no cover - a multiple of a point of small order
                continue
            if not started[j]:
                xs[j], ys[j] = q
                started[j] = True
            elif q[0] == xs[j]:  # pragma: no cover
                # the sum so far is ±q: impossible for 0 < k < N (the part of k below window
                # i is less than 256^i), kept so that the result never depends on it
                both = _add_exactly((xs[j], ys[j]), q)
                if both is None:
                    started[j] = False
                else:
                    xs[j], ys[j] = both
            else:
                idx.append(j)
                qx.append(q[0])
                qy.append(q[1])
        m = len(idx)
        if not m:
            continue
        # prefix[t] = the product of the first t denominators; one inversion of them all
        prefix = [0] * m
        acc = 1
        for t in range(m):
            prefix[t] = acc
            acc = acc * (qx[t] - xs[idx[t]]) % P
        inv = pow(acc, -1, P)
        for t in range(m - 1, -1, -1):
            j = idx[t]
            x1 = xs[j]
            x2 = qx[t]
            h_inv = inv * prefix[t] % P  # 1 / (x2 − x1)
            inv = inv * (x2 - x1) % P  # 1 / (the product of the first t)
            lam = (qy[t] - ys[j]) * h_inv % P
            x3 = (lam * lam - x1 - x2) % P
            ys[j] = (lam * (x1 - x3) - ys[j]) % P
            xs[j] = x3
    return [(xs[j], ys[j]) if started[j] else None for j in range(n)]


G: Affine = (GX, GY)
