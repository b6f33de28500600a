"""The forwarder's HTTP/1.1 answer parser, fed bytes (no sockets): every way a body is
delimited, answers split at every byte, keep-alive, and what it refuses."""

from __future__ import annotations

import gzip

import pytest

from forwarder.http_client import (
    MAX_BODY,
    ConnectionClosed,
    Endpoint,
    HttpError,
    ProtocolError,
    ResponseParser,
    endpoint_and_target,
    request_head,
)
from tests.helpers.fastagi import HOST


def parse(*pieces: bytes, eof: bool = False, head_only: bool = False) -> ResponseParser:
    parser = ResponseParser(head_only=head_only)
    for piece in pieces:
        parser.feed(piece)
    if eof:
        parser.feed_eof()
    return parser


def bytewise(data: bytes, eof: bool = False) -> ResponseParser:
    return parse(*(data[i : i + 1] for i in range(len(data))), eof=eof)


LENGTH = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
          b'{"code":"0"}xyz')
CHUNKED = (b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")


@pytest.mark.parametrize("feed", [parse, bytewise], ids=["whole", "byte by byte"])
def test_body_by_content_length(feed: object) -> None:
    parser = feed(LENGTH)  # type: ignore[operator]
    assert parser.done and parser.keep_alive
    response = parser.response()
    assert (response.status, response.reason) == (200, "OK")
    assert response.body == b'{"code":"0"}xyz'
    assert response.text() == '{"code":"0"}xyz'


@pytest.mark.parametrize("feed", [parse, bytewise], ids=["whole", "byte by byte"])
def test_chunked_body_with_extensions_and_trailers(feed: object) -> None:
    parser = feed(CHUNKED)  # type: ignore[operator]
    assert parser.done and parser.keep_alive
    assert parser.response().body == b"hello, world"
    assert parser.response().status == 500
    assert "X-Trailer" not in parser.response().headers  # trailers are dropped


def test_not_done_until_the_last_byte() -> None:
    parser = parse(LENGTH[:-1])
    assert not parser.done
    parser.feed(LENGTH[-1:])
    assert parser.done


def test_headers_are_case_insensitive_and_repeats_joined() -> None:
    parser = parse(b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\nVia: a\r\nVIA: b\r\n"
                   b"Content-Length: 0\r\n\r\n")
    headers = parser.response().headers
    assert headers["Retry-After"] == headers.get("RETRY-AFTER") == "7"
    assert headers["via"] == "a, b"
    assert "Location" not in headers and headers.get("Location") is None


def test_a_redirect_is_an_answer_like_any_other() -> None:
    """Never followed (issue 8, defect 2): the status and Location go to classify."""
    response = parse(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/elsewhere\r\n"
                     b"Content-Length: 0\r\n\r\n").response()
    assert response.status == 302
    assert response.headers["location"] == "http://127.0.0.1/elsewhere"


def test_connection_close_and_http10_are_not_kept_alive() -> None:
    closing = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert closing.done and not closing.keep_alive
    old = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert old.done and not old.keep_alive
    old_kept = parse(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok")
    assert old_kept.keep_alive


def test_body_to_the_close_when_no_length_is_given() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\n\r\nall of ", b"this")
    assert not parser.done
    parser.feed_eof()
    assert parser.done and not parser.keep_alive
    assert parser.response().body == b"all of this"


def test_no_body_for_204_304_and_head() -> None:
    assert parse(b"HTTP/1.1 204 No Content\r\n\r\n").done
    assert parse(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").done
    assert parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", head_only=True).done


def test_interim_answers_are_skipped() -> None:
    parser = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
                   b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert parser.done
    assert parser.response().status == 201
    assert "Link" not in parser.response().headers


def test_bare_lf_line_ends_are_tolerated() -> None:
    parser = parse(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
    assert parser.done and parser.response().body == b"ok"


def test_bytes_after_the_answer_are_kept_apart() -> None:
    parser = parse(LENGTH + b"HTTP/1.1 200")
    assert parser.done
    assert parser.leftover == b"HTTP/1.1 200"
    assert parser.response().body == b'{"code":"0"}xyz'


def test_eof_before_any_byte_or_mid_answer() -> None:
    with pytest.raises(ConnectionClosed) as nothing:
        parse(b"", eof=True)
    assert not nothing.value.answered  # may be sent again on a fresh connection
    with pytest.raises(ConnectionClosed) as cut:
        parse(LENGTH[:30], eof=True)
    assert cut.value.answered  # part of an answer came: never sent again silently
    with pytest.raises(ConnectionClosed):
        parse(CHUNKED[:-5], eof=True)


def test_a_huge_body_is_read_but_only_its_start_kept() -> None:
    size = MAX_BODY + 10_000
    parser = parse(f"HTTP/1.1 400 Bad Request\r\nContent-Length: {size}\r\n\r\n".encode(),
                   b"x" * size)
    assert parser.done and parser.keep_alive
    assert len(parser.response().body) == MAX_BODY


def test_gzip_and_charset() -> None:
    body = gzip.compress("数据重复".encode("gbk"))
    parser = parse(b"HTTP/1.1 409 Conflict\r\nContent-Encoding: gzip\r\n"
                   b"Content-Type: application/json; charset=GBK\r\n"
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert parser.response().text() == "数据重复"
    unknown = parse(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=nonesuch\r\n"
                    b"Content-Length: 4\r\n\r\n\xff ok")
    assert unknown.response().text() == "\ufffd ok"


@pytest.mark.parametrize("data", [
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"HTTP/1.1 20 OK\r\n",
    b"HTTP/2 200\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n",
    b"HTTP/1.1 200 OK\r\n folded: header\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000,
])
def test_what_is_not_an_answer_is_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(data)


def test_the_request_head() -> None:
    # the loopback host of the tests (only parsed here: nothing is connected to)
    endpoint, target = endpoint_and_target(f"https://user:p%40ss@{HOST}:8443/push?x=1")
    assert endpoint == Endpoint("https", HOST, 8443, f"{HOST}:8443", "Basic dXNlcjpwQHNz")
    assert target == "/push?x=1"
    default, slash = endpoint_and_target("http://127.0.0.1")
    assert (default.host_header, slash) == ("127.0.0.1", "/")
    head = request_head(default, "/push", {"X-Signature": "ab"}, 12)
    assert head == (b"POST /push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\n"
                    b"User-Agent: hotline-forwarder\r\nX-Signature: ab\r\n\r\n")


def test_a_header_cannot_smuggle_a_line() -> None:
    endpoint, _ = endpoint_and_target("http://127.0.0.1/push")
    with pytest.raises(HttpError):
        request_head(endpoint, "/push", {"X-Key": "a\r\nX-Evil: 1"}, 0)
    with pytest.raises(HttpError):
        endpoint_and_target("ftp://127.0.0.1/")


def test_mixed_line_ends_in_a_whole_head() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\nContent-Length: 2\r\n\r\nok")
    headers = parser.response().headers
    assert (headers["A"], headers["B"], parser.response().body) == ("1", "2", b"ok")
