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


G: Affine = (GX, GY)
