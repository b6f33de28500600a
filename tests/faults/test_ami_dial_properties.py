"""Property-based tests (issue 8 fault suite) of the AMI parser and of the dial-attempt state
machine: whatever arrives, in whatever order and pieces, no exception escapes, and every
attempt ends recorded with an outcome (DOMAIN.md rule 5: never silently dropped; rule 8: the
IVR's "rated" is never turned into a retry)."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ami.protocol import Message, Parser, ProtocolError, encode  # noqa: E402
from callback_scheduler.attempt import (  # noqa: E402
    IVR_OUTCOMES,
    AttemptMachine,
    Disconnected,
    Hangup,
    IvrResult,
    OriginateResponse,
    Overdue,
    Reconciled,
)
from callback_scheduler.lifecycle import AttemptStatus  # noqa: E402
from callback_scheduler.rules import Outcome  # noqa: E402

BOUNDED = settings(max_examples=300, deadline=None, database=None)


# ---------------------------------------------------------------------- AMI parser
def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


@BOUNDED
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0), max_size=8),
       st.booleans())
def test_fault_ami_parser_takes_any_bytes_in_any_pieces(
    data: bytes, cuts: list[int], banner: bool,
) -> None:
    parser = Parser(expect_banner=banner)
    messages: list[Message] = []
    for piece in _split(data, cuts):
        messages.extend(parser.feed(piece))
    for m in messages:
        assert m.headers  # a message is never empty
        assert set(m.as_dict()) <= {k for k, _ in m.headers}


_KEY = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                      blacklist_characters=":"), min_size=1, max_size=20)
_VALUE = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                        blacklist_characters="\r\n"), max_size=40)


@BOUNDED
@given(st.lists(st.tuples(_KEY, _VALUE), max_size=8),
       st.lists(st.integers(min_value=0), max_size=8))
def test_fault_ami_encoded_action_reads_back_whatever_the_pieces(
    headers: list[tuple[str, str]], cuts: list[int],
) -> None:
    action: dict[str, object] = {"Action": "Originate"}
    for key, value in headers:
        if key.lower() != "action":
            action[key] = value
    data = encode(action)  # type: ignore[arg-type]
    parser = Parser(expect_banner=False)
    got = [m for piece in _split(data, cuts) for m in parser.feed(piece)]
    assert len(got) == 1 and not parser.pending
    assert list(got[0].headers) == [(k, str(v)) for k, v in action.items()]


@BOUNDED
@given(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5))
def test_fault_ami_encode_refuses_rather_than_forges(fields: dict[str, str]) -> None:
    """A CR/LF in a header would let a value forge a second action: refused, never sent."""
    action: dict[str, object] = {"Action": "Originate", **fields}
    try:
        data = encode(action)  # type: ignore[arg-type]
    except ProtocolError:
        return
    got = Parser(expect_banner=False).feed(data)
    assert len(got) == 1


# ------------------------------------------------------------- dial-attempt machine
_EVENTS = st.one_of(
    st.builds(OriginateResponse, reason=st.integers(min_value=-1, max_value=10),
              success=st.booleans()),
    st.builds(Hangup, cause=st.one_of(st.none(), st.integers(min_value=0, max_value=130))),
    st.builds(IvrResult, outcome=st.sampled_from(sorted(IVR_OUTCOMES))),
    st.just(Disconnected()),
    st.just(Overdue()),
    st.builds(Reconciled, alive=st.booleans(), up=st.booleans()),
)


def _close(machine: AttemptMachine) -> Outcome:
    """What the dialer does when nothing more comes: overdue, then the channel is gone."""
    for event in (Overdue(), Reconciled(alive=False)):
        machine.handle(event)
    assert machine.outcome is not None
    return machine.outcome


@BOUNDED
@given(st.lists(_EVENTS, max_size=25),
       st.sampled_from([AttemptStatus.DIALING, AttemptStatus.ANSWERED, AttemptStatus.LOST]))
def test_fault_attempt_machine_every_path_ends_recorded(
    events: list[object], start: AttemptStatus,
) -> None:
    machine = AttemptMachine(start)
    first: Outcome | None = None
    for event in events:
        outcome = machine.handle(event)  # type: ignore[arg-type]
        if outcome is not None and first is None:
            first = outcome
            assert machine.ended and machine.outcome is outcome
        if machine.ended:
            assert machine.outcome is not None
    final = _close(machine)
    assert machine.ended and final in set(Outcome)
    if first is not None and first is not Outcome.ANSWERED_NO_RATING:
        assert final is first  # an ended attempt's outcome never changes ...
    if first is Outcome.ANSWERED_NO_RATING:
        assert final in {Outcome.ANSWERED_NO_RATING, *IVR_OUTCOMES}  # ... but for the IVR's


@BOUNDED
@given(st.lists(_EVENTS, max_size=25))
def test_fault_attempt_machine_an_ivr_rating_before_the_end_is_never_lost(
    events: list[object],
) -> None:
    """Rule 8: once the IVR said "rated" during the call, the attempt ends rated (never
    "answered, no rating", which would plan a retry call to a citizen who rated)."""
    machine = AttemptMachine()
    rated_before_end = False
    for event in events:
        if not machine.ended and event == IvrResult(Outcome.RATED):
            rated_before_end = True
        machine.handle(event)  # type: ignore[arg-type]
    if rated_before_end:
        machine.handle(IvrResult(Outcome.RATED))
    final = _close(machine)
    if rated_before_end and machine.answered:
        assert final is Outcome.RATED
