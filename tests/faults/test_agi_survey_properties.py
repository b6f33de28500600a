"""Issue 8 fault suite, property-based (hypothesis): the AGI parsers take any input without an
unexpected exception, and the survey state machine ends every path recorded (DOMAIN.md rule 1:
a vote pressed is saved as final, anything else is marked not rated — never neither)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.levels import KeypadMap
from ivr import call_ledger
from ivr.agi import protocol as p
from ivr.agi.simulated import split_args
from ivr.dialog import (
    Collect,
    Digit,
    Event,
    HungUp,
    PromptFailed,
    Record,
    RecordingDone,
    RecordingFailed,
    Timeout,
)
from ivr.survey import Finish, MarkNotRated, Save, Survey, SurveyConfig

lines = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="replace")),
    st.sampled_from(["HANGUP", "", "200 result=1 (x)", "520-Invalid", "520 End", "511 dead",
                     "agi_network: yes", "200 result=-1 (timeout) endpos=12"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(lines, max_size=30))
def test_reply_parser_raises_nothing_but_protocol_errors(feed: list[str]) -> None:
    parser = p.ReplyParser()
    for line in feed:
        try:
            event = parser.feed(line)
        except p.AgiProtocolError:
            continue
        assert event is None or event is p.HANGUP or isinstance(event, p.Reply)
        if isinstance(event, p.Reply):
            # the typed readers accept whatever parsed
            p.interpret_get_data(event)
            p.interpret_stream_file(event)
            p.interpret_record_file(event)
            assert event.endpos is None or isinstance(event.endpos, int)


@settings(max_examples=400, deadline=None)
@given(st.lists(lines, max_size=40))
def test_environment_parser_raises_nothing_but_protocol_errors(feed: list[str]) -> None:
    parser = p.EnvironmentParser()
    try:
        for line in feed:
            if parser.feed(line):
                env = parser.result()
                assert isinstance(env.route, str) and isinstance(env.query, dict)
                return
    except p.AgiProtocolError:
        return


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n",
                                              blacklist_categories=("Cs",)), max_size=40),
                min_size=1, max_size=9))
def test_joined_values_round_trip_whatever_they_hold(values: list[str]) -> None:
    """What URIENCODE makes of any value comes back intact, and the split never confuses a
    value's own "|" with the separator (issue 13's one-round-trip read)."""
    from urllib.parse import quote

    encoded = p.JOIN_SEPARATOR.join(quote(v, safe="-_.!~*'()") for v in values)
    reply = p.parse_reply(f"200 result=1 ({encoded})")
    assert p.split_joined(reply.data or "", len(values)) == values


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_command_arguments_survive_asterisk_parsing(value: str) -> None:
    try:
        line = p.Command("SET VARIABLE", ("X", value)).line()
    except ValueError:
        assert "\n" in value or "\r" in value
        return
    assert split_args(line)[2:] == ["X", value]


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=200),
    st.dictionaries(st.sampled_from(["eventtype", "userdeftype", "linkedid", "eventextra",
                                     "eventtime", "num", "uniqueid", "channame"]),
                    st.one_of(st.text(max_size=40), st.integers(), st.none(),
                              st.just("hotline_call")), max_size=8).map(json.dumps),
))
def test_call_ledger_lines_never_raise(line: str) -> None:
    entry = call_ledger.parse_line(line)
    assert entry is None or (entry.info.linkedid and len(entry.info.linkedid) <= 64)


# ----------------------------------------------------------------------------- the survey machine
CONFIG = SurveyConfig(
    keypad=KeypadMap({"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}),
    reasons={"1": "1", "2": "2", "3": "3"},
    max_tries=3,
    comment_max_seconds=10,
)
KEYS = st.sampled_from(list("0123456789*#"))


def answer(action: object, draw: st.DrawFn) -> Event:
    """What the adapter can report after the batch's last action."""
    if isinstance(action, Collect):
        return draw(st.one_of(KEYS.map(Digit), st.just(Timeout()), st.just(HungUp()),
                              st.just(PromptFailed())))
    assert isinstance(action, Record)
    return draw(st.one_of(
        st.builds(RecordingDone, path=st.just("hotline/recordings/x.wav"),
                  seconds=st.floats(0, 20), hung_up=st.booleans()),
        st.just(RecordingFailed()), st.just(HungUp())))


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_every_survey_path_ends_recorded(data: st.DataObject) -> None:
    survey = Survey(CONFIG)
    actions = list(survey.start())
    performed: list[object] = list(actions)
    for _ in range(200):
        last = actions[-1] if actions else None
        if last is None or isinstance(last, Finish):
            break
        # a hang-up may also come in the middle of a batch (the adapter drops the rest)
        event = answer(last, data.draw)
        actions = list(survey.handle(event))
        performed += actions
        if isinstance(event, HungUp) and not actions:
            break
    assert survey.finished, "the survey did not end"
    final_saves = [a for a in performed if isinstance(a, Save) and a.final]
    not_rated = [a for a in performed if isinstance(a, MarkNotRated)]
    if survey.level is not None:
        assert final_saves and final_saves[-1].level == survey.level and not not_rated
    else:
        assert not_rated and not final_saves
    # a hang-up after the end changes nothing
    assert survey.handle(HungUp()) == []
