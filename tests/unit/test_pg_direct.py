"""storage.pg_direct: a SQLAlchemy statement compiled once for asyncpg, its run-time values
put in position and SQLAlchemy's own literals fixed at compile time (issue 13)."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, String, bindparam, literal, select

from storage.pg_direct import PgStatement


def test_values_go_in_position_and_literals_are_fixed() -> None:
    statement = select(bindparam("b", type_=String), literal(7, Integer),
                       bindparam("a", type_=Integer), bindparam("b", type_=String))
    compiled = PgStatement(statement, ("a", "b"))
    assert compiled.sql == ("SELECT $1::VARCHAR AS anon_1, $2::INTEGER AS anon_2, "
                            "$3::INTEGER AS anon_3, $1::VARCHAR AS anon_4")
    assert compiled.arguments({"a": 1, "b": "x"}) == ["x", 7, 1]


def test_a_name_the_statement_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="not parameters"):
        PgStatement(select(bindparam("a", type_=Integer)), ("a", "typo"))
