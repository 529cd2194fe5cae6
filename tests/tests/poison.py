"""Publish pathological AMQP messages byte by byte, as no client library would.

    python3 poison.py AMQP_URL EXCHANGE ROUTING_KEY REPLY_TO

A minimal AMQP 0-9-1 publisher on the standard library alone: client libraries
(lapin, pika) encode header tables recursively and refuse what they consider invalid,
so they cannot send a table nested 2,000 deep, an unknown field type or a key that is
not UTF-8. Each case is published with publisher confirms on a fresh channel; a case
the broker refuses closes the channel (or the connection) and the script says so and
carries on. Prints one JSON line per case: {"name", "broker": "ack" | "nack" |
"refused: <reply text>", "correlation_id"}.
"""
import json
import socket
import struct
import sys
import urllib.parse

FRAME_END = b"\xce"


def short_str(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("B", len(b)) + b


def long_str(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack(">I", len(b)) + b


def table(entries):
    """entries: (key bytes or str, encoded value with its type tag)."""
    body = b"".join(short_str(k) + v for k, v in entries)
    return struct.pack(">I", len(body)) + body


def nested_tables(depth):
    """{"a": {"a": ... {} }} with `depth` tables in all, built without recursion."""
    inner = table([])
    for _ in range(depth - 1):
        inner = table([("a", b"F" + inner)])
    return inner


def nested_arrays(depth):
    """{"a": [[[...]]]}: the header table and `depth` - 1 arrays inside it."""
    value = b"A" + struct.pack(">I", 0)
    for _ in range(depth - 2):
        value = b"A" + struct.pack(">I", len(value)) + value
    return table([("a", value)])


def every_field_type():
    """Each type RabbitMQ's table grammar has, at its extremes."""
    return table(
        [
            ("t", b"t\x01"),
            ("b", b"b\x80"),
            ("B", b"B\xff"),
            ("s", b"s" + struct.pack(">h", -(2**15))),
            ("u", b"u" + struct.pack(">H", 2**16 - 1)),
            ("I", b"I" + struct.pack(">i", -(2**31))),
            ("i", b"i" + struct.pack(">I", 2**32 - 1)),
            ("l", b"l" + struct.pack(">q", -(2**63))),
            ("L", b"L" + struct.pack(">q", 2**63 - 1)),
            ("f", b"f" + struct.pack(">f", 3.4e38)),
            ("d", b"d" + struct.pack(">d", -1.7e308)),
            ("D", b"D\xff" + struct.pack(">I", 2**32 - 1)),
            ("S", b"S" + long_str(b"\xff\x00 bytes, not text")),
            ("T", b"T" + struct.pack(">Q", 2**64 - 1)),
            ("F", b"F" + table([("x", b"V")])),
            ("A", b"A" + struct.pack(">I", 4) + b"t\x00t\x01"),
            ("x", b"x" + long_str(b"\x00\x01\xfe")),
            ("V", b"V"),
        ]
    )


def cases():
    """(name, header table, body, property overrides)."""
    yield "nested-tables-2000", table([("x-poison", b"F" + nested_tables(1999))]), b"{}", {}
    yield "nested-arrays-2000", nested_arrays(2000), b"{}", {}
    yield "nested-tables-64", table([("x-poison", b"F" + nested_tables(63))]), b"{}", {}
    yield "many-keys-10000", table([("k%05d" % i, b"V") for i in range(10000)]), b"{}", {}
    yield "long-string-100k", table([("x-long", b"S" + long_str("y" * 100_000))]), b"{}", {}
    yield "every-field-type", every_field_type(), b"{}", {}
    yield "key-not-utf8", table([(b"\xff\xfe", b"t\x01")]), b"{}", {}
    yield "message-id-not-utf8", table([]), b"{}", {"message_id": b"\xc3\x28"}
    yield "deadline-a-byte-array", table([("x-scale0-deadline", b"x" + long_str(b"\x00"))]), b"{}", {}
    yield "body-not-json", table([]), b"\xff\x00 not json", {}
    # Refused by RabbitMQ 3.10 itself (the connection is closed): they never reach a
    # consumer, and the script reconnects.
    yield "float-nan", table([("f", b"f" + struct.pack(">f", float("nan")))]), b"{}", {}
    yield "unknown-field-type", table([("x-what", b"Z\x00")]), b"{}", {}


class Connection:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.user = urllib.parse.unquote(u.username or "guest")
        self.password = urllib.parse.unquote(u.password or "guest")
        self.vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 5672), 10)
        self.buf = b""
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(0, 10, 10)  # connection.start
        response = b"\x00" + self.user.encode() + b"\x00" + self.password.encode()
        self.method(0, 10, 11, table([]) + short_str("PLAIN") + long_str(response) + short_str("en_US"))
        args = self.expect(0, 10, 30)  # connection.tune
        channel_max, frame_max, _ = struct.unpack(">HIH", args[:8])
        self.frame_max = frame_max or 131072
        self.method(0, 10, 31, struct.pack(">HIH", channel_max, self.frame_max, 0))
        self.method(0, 10, 40, short_str(self.vhost) + short_str("") + b"\x00")
        self.expect(0, 10, 41)
        self.channel = 0

    def frame(self, kind, channel, payload):
        self.sock.sendall(struct.pack(">BHI", kind, channel, len(payload)) + payload + FRAME_END)

    def method(self, channel, class_id, method_id, args):
        self.frame(1, channel, struct.pack(">HH", class_id, method_id) + args)

    def read_frame(self):
        while True:
            if len(self.buf) >= 7:
                kind, channel, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    payload = self.buf[7 : 7 + size]
                    self.buf = self.buf[8 + size :]
                    return kind, channel, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            self.buf += chunk

    def expect(self, channel, class_id, method_id):
        """The next method on `channel`; a close of the channel or connection raises."""
        while True:
            kind, ch, payload = self.read_frame()
            if kind != 1:
                continue
            cid, mid = struct.unpack(">HH", payload[:4])
            args = payload[4:]
            if (cid, mid) == (10, 50):  # connection.close
                code = struct.unpack(">H", args[:2])[0]
                text = args[3 : 3 + args[2]].decode(errors="replace")
                self.method(0, 10, 51, b"")
                raise Refused(f"connection closed {code} {text}", connection=True)
            if (cid, mid) == (20, 40) and ch == channel:  # channel.close
                code = struct.unpack(">H", args[:2])[0]
                text = args[3 : 3 + args[2]].decode(errors="replace")
                self.method(ch, 20, 41, b"")
                raise Refused(f"channel closed {code} {text}")
            if ch == channel and (cid, mid) == (class_id, method_id):
                return args
            if ch == channel and (cid, mid) == (60, 120):  # basic.nack
                return None

    def open_channel(self):
        self.channel += 1
        self.method(self.channel, 20, 10, short_str(""))
        self.expect(self.channel, 20, 11)
        self.method(self.channel, 85, 10, b"\x00")  # confirm.select
        self.expect(self.channel, 85, 11)

    def publish(self, exchange, routing_key, headers, body, reply_to, correlation_id, message_id):
        ch = self.channel
        self.method(ch, 60, 40, struct.pack(">H", 0) + short_str(exchange) + short_str(routing_key) + b"\x00")
        # Properties present: content-type, headers, delivery-mode, correlation-id,
        # reply-to, message-id.
        flags = (1 << 15) | (1 << 13) | (1 << 12) | (1 << 10) | (1 << 9) | (1 << 7)
        props = (
            short_str("application/json")
            + headers
            + b"\x02"
            + short_str(correlation_id)
            + short_str(reply_to)
            + short_str(message_id)
        )
        self.frame(2, ch, struct.pack(">HHQH", 60, 0, len(body), flags) + props)
        step = self.frame_max - 8
        for i in range(0, len(body), step):
            self.frame(3, ch, body[i : i + step])
        return "ack" if self.expect(ch, 60, 80) is not None else "nack"


class Refused(Exception):
    def __init__(self, text, connection=False):
        super().__init__(text)
        self.connection = connection


def main():
    url, exchange, routing_key, reply_to = sys.argv[1:5]
    conn = None
    for name, headers, body, overrides in cases():
        correlation_id = f"poison-{name}"
        message_id = overrides.get("message_id", correlation_id)
        try:
            if conn is None:
                conn = Connection(url)
            conn.open_channel()
            outcome = conn.publish(
                exchange, routing_key, headers, body, reply_to, correlation_id, message_id
            )
        except Refused as e:
            outcome = f"refused: {e}"
            if e.connection:
                conn = None
        except (ConnectionError, OSError) as e:
            outcome = f"refused: {e}"
            conn = None
        print(json.dumps({"name": name, "broker": outcome, "correlation_id": correlation_id}), flush=True)


if __name__ == "__main__":
    main()
