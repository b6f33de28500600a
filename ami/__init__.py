"""Asterisk Manager Interface: a wire-format module (protocol) and an asyncio client."""

from ami.client import (
    CLIENT_CONNECTED,
    CLIENT_DISCONNECTED,
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiConnectionError,
    AmiDisconnected,
    AmiError,
    AmiNotConnected,
    AmiTimeout,
    EventStream,
)
from ami.protocol import Event, Message, Parser, ProtocolError, Response, encode

__all__ = [
    "CLIENT_CONNECTED",
    "CLIENT_DISCONNECTED",
    "AmiActionError",
    "AmiAuthError",
    "AmiClient",
    "AmiConnectionError",
    "AmiDisconnected",
    "AmiError",
    "AmiNotConnected",
    "AmiTimeout",
    "Event",
    "EventStream",
    "Message",
    "Parser",
    "ProtocolError",
    "Response",
    "encode",
]
