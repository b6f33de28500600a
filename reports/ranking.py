"""Department ranking, 表扬 and 通报 flags: pure functions, figures in, decisions out.

Seed 000: "定期公布'好差评'评价结果，对好评率高的部门进行通报表扬…对连续排名靠后 3 位的部门进行
通报". The order is a list of figure keys (setting ``report_ranking_order``; default 满意率,
ties broken by 差评率, then 按期整改率), each compared in its own better direction
(``Figure.higher_is_better``); a figure that cannot be computed for a department (no votes,
no 差评 items) sorts after every known value. Departments equal on every key share a rank
(competition ranking: 1, 2, 2, 4). Departments with fewer real votes than
``report_department_min_votes`` are listed unranked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reports.figures import BY_KEY


@dataclass
class Ranked:
    key: str
    rank: int | None  # None: not ranked (too few votes)
    praised: bool = False  # among the top ``praise_count``: 通报表扬
    bottom: bool = False  # among the last ``bottom_count`` ranks
    flagged: bool = False  # in the bottom for ``consecutive`` periods running: 通报
    sort_key: tuple[tuple[int, float], ...] = field(default=(), repr=False)


def _sort_key(values: Mapping[str, float | int | None], order: Sequence[str]) -> tuple:
    key = []
    for name in order:
        v = values.get(name)
        if v is None:
            key.append((1, 0.0))  # unknown: after every known value
        else:
            key.append((0, -float(v) if BY_KEY[name].higher_is_better else float(v)))
    return tuple(key)


def rank(
    rows: Mapping[str, Mapping[str, float | int | None]],
    *,
    order: Sequence[str],
    min_votes: int,
    praise_count: int,
    bottom_count: int,
) -> list[Ranked]:
    """Rank the departments (``rows``: department → figure values, ``real`` the vote count).
    Returns ranked departments best first, then the unranked ones by key."""
    eligible = {k: v for k, v in rows.items() if (v.get("real") or 0) >= max(min_votes, 1)}
    ordered = sorted(eligible, key=lambda k: (_sort_key(eligible[k], order), k))
    result: list[Ranked] = []
    previous: tuple | None = None
    for position, key in enumerate(ordered, start=1):
        sk = _sort_key(eligible[key], order)
        shared = result[-1].rank if previous == sk and result else position
        result.append(Ranked(key=key, rank=shared, sort_key=sk))
        previous = sk
    total = len(result)
    # the bottom: every department whose rank is among the last ``bottom_count`` positions
    # (ties at the border are all in); a list too short to have a top and a bottom apart
    # flags nobody at the bottom
    cut = total - bottom_count + 1
    for r in result:
        assert r.rank is not None
        r.praised = r.rank <= praise_count
        r.bottom = total > bottom_count and r.rank >= cut
    result.extend(Ranked(key=k, rank=None) for k in sorted(set(rows) - set(eligible)))
    return result


def consecutive_bottom(history: Sequence[set[str]], periods: int) -> set[str]:
    """Departments in the bottom set of each of the last ``periods`` periods (``history``
    oldest first, the current period last)."""
    if periods < 1 or len(history) < periods:
        return set()
    recent = history[-periods:]
    result = set(recent[0])
    for bottom in recent[1:]:
        result &= bottom
    return result


def apply_flags(ranked: list[Ranked], flagged: set[str]) -> None:
    for r in ranked:
        r.flagged = r.key in flagged
