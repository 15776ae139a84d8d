#!/usr/bin/env python3
"""Writes the seed corpus of the `websocket_frames` fuzz target (corpus/websocket_frames/):
short WAMP sessions per subprotocol in the target's input format (see
src/websocket.rs), plus fragmented, control, oversized, unmasked frames and bad
upgrade requests. Needs msgpack and cbor2 (e.g. target/pyenv/bin/python)."""
import json
import struct
import sys
from pathlib import Path

import cbor2
import msgpack

OUT = Path(__file__).resolve().parent / "corpus" / "websocket_frames"
KEY = b"\x0b\xad\xf0\x0d"
SER = {"json": 0, "msgpack": 1, "cbor": 2, "json.batched": 3, "msgpack.batched": 4}

SESSION = [
    [1, "realm1", {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}],
    [32, 1, {}, "com.fuzz.topic"],
    [16, 2, {"acknowledge": True, "exclude_me": False}, "com.fuzz.topic", [1, "two"], {"k": 3.5}],
    [64, 3, {"match": "prefix"}, "com.fuzz."],
    [48, 4, {"receive_progress": True}, "com.fuzz.proc", [7]],
    [70, 1, {}, ["result"]],
    [6, {}, "wamp.close.normal"],
]


def encode(ser, msg):
    base = ser.split(".")[0]
    if base == "json":
        return json.dumps(msg, separators=(",", ":")).encode()
    if base == "msgpack":
        return msgpack.packb(msg, use_bin_type=True)
    return cbor2.dumps(msg)


def batch(ser, msgs):
    if ser.startswith("json"):
        return b"".join(encode(ser, m) + b"\x1e" for m in msgs)
    return b"".join(struct.pack(">I", len(p)) + p for p in (encode(ser, m) for m in msgs))


def frame(payload, opcode, fin=True, masked=True, long=None):
    """One frame in the target's structured format."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if long is None and n < 126:
        head = bytes([b0, (0x80 if masked else 0) | n])
    else:
        head = bytes([b0, (0x80 if masked else 0) | (127 if long == 64 else 126)]) + struct.pack(">H", n)
    return head + (KEY if masked else b"") + payload


def data_opcode(ser):
    return 1 if ser.startswith("json") else 2


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for ser, idx in SER.items():
        op = data_opcode(ser)
        if ser.endswith("batched"):
            body = frame(batch(ser, SESSION[:4]), op) + frame(batch(ser, SESSION[4:]), op)
        else:
            body = b"".join(frame(encode(ser, m), op) for m in SESSION)
        seeds[f"{ser}_session"] = bytes([idx]) + body
        # HELLO prepended by the harness (bit 4), then the rest of the session
        seeds[f"{ser}_hello_prefix"] = bytes([idx | 0x10]) + b"".join(
            frame(encode(ser, m) if not ser.endswith("batched") else batch(ser, [m]), op) for m in SESSION[1:]
        )
    hello = encode("json", SESSION[0])
    # fragmented HELLO with a ping in between, a pong, then a close with code 1000
    seeds["json_fragmented_ping_close"] = bytes([0]) + (
        frame(hello[:10], 1, fin=False) + frame(b"hi", 9) + frame(hello[10:], 0) + frame(b"", 10)
        + frame(struct.pack(">H", 1000) + b"bye", 8)
    )
    # 16- and 64-bit length encodings, and a message over the 1 KiB limit
    seeds["json_long_lengths"] = bytes([0x10]) + frame(encode("json", SESSION[1]), 1, long=16) + frame(
        encode("json", SESSION[2]), 1, long=64)
    seeds["json_oversized"] = bytes([0x10]) + frame(encode("json", [48, 9, {}, "com.big", ["x" * 2000]]), 1)
    seeds["json_unmasked"] = bytes([0]) + frame(hello, 1, masked=False)
    seeds["json_binary_frame"] = bytes([0]) + frame(hello, 2)
    seeds["no_subprotocol"] = bytes([0x20]) + frame(hello, 1)
    seeds["wrong_path"] = bytes([0x40]) + frame(hello, 1)
    # verbatim mode: a hand-masked frame stream (zero mask key)
    seeds["raw_verbatim"] = bytes([0x08]) + bytes([0x81, 0x80 | len(hello)]) + b"\0\0\0\0" + hello
    for name, data in seeds.items():
        (OUT / name).write_bytes(data)
    print(f"{len(seeds)} seeds in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
