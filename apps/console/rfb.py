"""Just enough of the RFB (VNC) client protocol to enforce view-only consoles on the server side.

noVNC's viewOnly flag only stops the browser from sending input; a modified client could still
send keys. For a view-only ticket the proxy passes the client's stream through this filter, which
forwards the handshake and the messages that only ask for pictures, and drops keyboard, pointer and
clipboard messages. Anything it does not understand ends the connection (fail closed).
"""

import struct

HANDSHAKE_VERSION = 12  # "RFB 003.008\n"
SECURITY_NONE = 1

# Client-to-server messages (RFC 6143 §7.5 and the common extensions noVNC sends).
SET_PIXEL_FORMAT = 0
SET_ENCODINGS = 2
FRAMEBUFFER_UPDATE_REQUEST = 3
KEY_EVENT = 4
POINTER_EVENT = 5
CLIENT_CUT_TEXT = 6
ENABLE_CONTINUOUS_UPDATES = 150
CLIENT_FENCE = 248
SET_DESKTOP_SIZE = 251
QEMU_CLIENT_MESSAGE = 255

INPUT_MESSAGES = {KEY_EVENT, POINTER_EVENT, CLIENT_CUT_TEXT, SET_DESKTOP_SIZE, QEMU_CLIENT_MESSAGE}


class ProtocolError(Exception):
    pass


def _message_length(buffer: bytes) -> int | None:
    """Length of the message at the start of `buffer`, or None if more bytes are needed."""
    kind = buffer[0]
    fixed = {
        SET_PIXEL_FORMAT: 20,
        FRAMEBUFFER_UPDATE_REQUEST: 10,
        KEY_EVENT: 8,
        POINTER_EVENT: 6,
        ENABLE_CONTINUOUS_UPDATES: 10,
    }
    if kind in fixed:
        return fixed[kind]
    if kind == SET_ENCODINGS:
        return None if len(buffer) < 4 else 4 + 4 * struct.unpack(">H", buffer[2:4])[0]
    if kind == CLIENT_CUT_TEXT:
        return None if len(buffer) < 8 else 8 + abs(struct.unpack(">i", buffer[4:8])[0])
    if kind == CLIENT_FENCE:
        return None if len(buffer) < 9 else 9 + buffer[8]
    if kind == SET_DESKTOP_SIZE:
        return None if len(buffer) < 8 else 8 + 16 * buffer[6]
    if kind == QEMU_CLIENT_MESSAGE:
        # QEMU extended key events (sub-type 0) are 12 bytes; other sub-types are refused below.
        return None if len(buffer) < 2 else (12 if buffer[1] == 0 else -1)
    return -1


class ViewOnlyFilter:
    """Feed it the client's bytes; it returns the bytes that may go on to the VNC server."""

    def __init__(self) -> None:
        self.buffer = b""
        self.handshake = bytearray()  # version (12), security type (1), ClientInit (1)
        self.dropped = 0

    @property
    def handshake_left(self) -> int:
        return HANDSHAKE_VERSION + 2 - len(self.handshake)

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = bytearray()
        while self.handshake_left and self.buffer:
            byte, self.buffer = self.buffer[:1], self.buffer[1:]
            if len(self.handshake) == HANDSHAKE_VERSION and byte[0] != SECURITY_NONE:
                raise ProtocolError("view-only consoles support VNC without a password only")
            if len(self.handshake) == HANDSHAKE_VERSION + 1:
                byte = b"\x01"  # ClientInit: always a shared session, never disconnect other viewers
            self.handshake += byte
            out += byte
        while self.buffer and not self.handshake_left:
            length = _message_length(self.buffer)
            if length == -1:
                raise ProtocolError(f"unexpected client message type {self.buffer[0]}")
            if length is None or len(self.buffer) < length:
                break
            message, self.buffer = self.buffer[:length], self.buffer[length:]
            if message[0] in INPUT_MESSAGES:
                self.dropped += 1
            else:
                out += message
        return bytes(out)
