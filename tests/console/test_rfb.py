"""The view-only filter passes picture requests and drops input, failing closed on the unknown."""

import struct

import pytest

from apps.console.rfb import ProtocolError, ViewOnlyFilter

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x00"  # security None, ClientInit exclusive
UPDATE = struct.pack(">BBHHHH", 3, 1, 0, 0, 720, 400)
ENCODINGS = struct.pack(">BBH", 2, 0, 2) + struct.pack(">ii", 0, -223)
KEY = struct.pack(">BBxxI", 4, 1, 0x61)
POINTER = struct.pack(">BBHH", 5, 1, 10, 10)
CUT_TEXT = struct.pack(">BxxxI", 6, 5) + b"hello"


def test_it_passes_the_handshake_and_makes_the_session_shared():
    assert ViewOnlyFilter().feed(HANDSHAKE) == HANDSHAKE[:-1] + b"\x01"


def test_it_passes_picture_requests_and_drops_keys_pointer_and_clipboard():
    view = ViewOnlyFilter()
    view.feed(HANDSHAKE)
    out = view.feed(ENCODINGS + KEY + UPDATE + POINTER + CUT_TEXT + UPDATE)
    assert out == ENCODINGS + UPDATE + UPDATE
    assert view.dropped == 3


def test_it_reassembles_messages_split_across_reads():
    view = ViewOnlyFilter()
    stream = HANDSHAKE + KEY + UPDATE + ENCODINGS
    out = b"".join(view.feed(stream[i : i + 3]) for i in range(0, len(stream), 3))
    assert out == HANDSHAKE[:-1] + b"\x01" + UPDATE + ENCODINGS


def test_it_refuses_an_unknown_message_type():
    view = ViewOnlyFilter()
    view.feed(HANDSHAKE)
    with pytest.raises(ProtocolError):
        view.feed(b"\x63" + b"\x00" * 20)


def test_it_refuses_password_security_for_view_only():
    with pytest.raises(ProtocolError):
        ViewOnlyFilter().feed(b"RFB 003.008\n" + b"\x02")
