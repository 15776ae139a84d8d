# Raw (wampraw) clients for the interop tests: what a client announces and
# what exactly goes over the wire.
#
# - `ALL_CLIENT_FEATURES` / `NO_FEATURES` / `PPT_CLIENT_FEATURES`: client roles
#   announcing every advanced feature, none, or every one plus
#   payload_passthru_mode (`with_features` adds features to every role).
# - `raw_peer` / `raw_on`: a wampraw client joined to realm1 announcing the
#   given client roles (default: every advanced feature; raw_on: plus
#   payload_passthru_mode, on a given router / cluster node), so the router
#   treats it as an advanced-profile peer.
# - small helpers on top of wampraw (register, subscribe, call, expect) and the
#   message codes wampraw lacks (CANCEL, INTERRUPT).
# - `wire_binary` / `same_binary`: how a binary value looks on the wire for a
#   serializer (JSON has no binary type: WAMP sends "\0" + base64, and expects
#   it back unchanged).
# - `BatchedWsClient`: a raw client over wamp.2.json.batched /
#   wamp.2.msgpack.batched that shows the batches as they are on the wire.
import base64
import struct

import wampraw

# message codes missing from wampraw (advanced profile)
CANCEL = 49
INTERRUPT = 69

ALL_CLIENT_FEATURES = {
    "publisher": {"features": {
        "publisher_identification": True,
        "subscriber_blackwhite_listing": True,
        "publisher_exclusion": True,
    }},
    "subscriber": {"features": {
        "publisher_identification": True,
        "pattern_based_subscription": True,
    }},
    "caller": {"features": {
        "caller_identification": True,
        "progressive_call_results": True,
        "progressive_call_invocations": True,
        "call_canceling": True,
        "call_timeout": True,
    }},
    "callee": {"features": {
        "caller_identification": True,
        "pattern_based_registration": True,
        "shared_registration": True,
        "progressive_call_results": True,
        "progressive_call_invocations": True,
        "call_canceling": True,
    }},
}

# A client announcing no features at all (basic profile only).
NO_FEATURES = {"publisher": {}, "subscriber": {}, "caller": {}, "callee": {}}

PPT = "payload_passthru_mode"


def with_features(roles, **extra):
    """A copy of client `roles` with extra features set on every role."""
    out = {}
    for role, body in roles.items():
        feats = dict(body.get("features", {}))
        feats.update(extra)
        out[role] = {"features": feats}
    return out


# every advanced client feature, plus payload passthru mode on all four roles
PPT_CLIENT_FEATURES = with_features(ALL_CLIENT_FEATURES, **{PPT: True})


# --------------------------------------------------------------------------
# Raw peers
# --------------------------------------------------------------------------


async def raw_peer(wamp, combo=None, roles=None):
    """A wampraw client joined to realm1 announcing `roles` (default: every
    advanced client feature). Sets .session_id, .welcome, .authid, .authrole."""
    c = await wamp.raw(combo=combo)
    welcome = await c.hello(details={"roles": ALL_CLIENT_FEATURES if roles is None else roles})
    assert welcome[0] == wampraw.WELCOME, f"expected WELCOME, got {welcome!r}"
    c.welcome = welcome
    c.session_id = welcome[1]
    c.authid = welcome[2].get("authid")
    c.authrole = welcome[2].get("authrole")
    return c


async def raw_register(c, procedure, options=None):
    rid = c.request_id()
    reply = await c.request([wampraw.REGISTER, rid, options or {}, procedure])
    assert reply[0] == wampraw.REGISTERED and reply[1] == rid, f"REGISTER {procedure} {options}: {reply!r}"
    return reply[2]


async def raw_subscribe(c, topic, options=None):
    rid = c.request_id()
    reply = await c.request([wampraw.SUBSCRIBE, rid, options or {}, topic])
    assert reply[0] == wampraw.SUBSCRIBED and reply[1] == rid, f"SUBSCRIBE {topic} {options}: {reply!r}"
    return reply[2]


async def raw_call(c, procedure, args=None, options=None, kwargs=None):
    """Send a CALL; returns its request id (read the answer with expect())."""
    rid = c.request_id()
    msg = [wampraw.CALL, rid, options or {}, procedure]
    if args is not None or kwargs is not None:
        msg.append(list(args or []))
    if kwargs is not None:
        msg.append(kwargs)
    await c.send(msg)
    return rid


async def expect(c, code, timeout=10.0, what=""):
    """The next message of raw client c; asserts its type code."""
    msg = await c.recv(timeout)
    assert msg[0] == code, f"{what}: expected message type {code}, got {msg!r}"
    return msg


async def expect_invocation(c, registration=None, timeout=10.0):
    inv = await expect(c, wampraw.INVOCATION, timeout, "callee")
    if registration is not None:
        assert inv[2] == registration, inv
    assert isinstance(inv[3], dict), inv
    return inv


def payload_of(msg, start):
    """(args, kwargs) of a message whose payload starts at index `start`."""
    args = msg[start] if len(msg) > start else []
    kwargs = msg[start + 1] if len(msg) > start + 1 else {}
    return args, kwargs


async def raw_on(w, router=None, combo=None, roles=None):
    """A wampraw client joined to realm1 on `router` (default: w's router),
    announcing `roles` (default PPT_CLIENT_FEATURES). Sets .session_id,
    .welcome, .authid, .authrole."""
    c = await w.raw(combo=combo, router=router)
    welcome = await c.hello(details={"roles": PPT_CLIENT_FEATURES if roles is None else roles})
    assert welcome[0] == wampraw.WELCOME, f"expected WELCOME, got {welcome!r}"
    c.welcome = welcome
    c.session_id = welcome[1]
    c.authid = welcome[2].get("authid")
    c.authrole = welcome[2].get("authrole")
    return c


def wire_binary(serializer, data):
    """`data` (bytes) as a raw client puts it on the wire with `serializer`."""
    if serializer == "json":
        return "\x00" + base64.b64encode(data).decode("ascii")
    return bytes(data)


def same_binary(serializer, got, data):
    """True when `got` (as decoded by a raw client) is the binary `data`."""
    if serializer == "json":
        return isinstance(got, str) and got.startswith("\x00") and base64.b64decode(got[1:]) == bytes(data)
    return isinstance(got, (bytes, bytearray)) and bytes(got) == bytes(data)


async def next_message(c, pred, timeout=10.0, what="a message"):
    """The next message of raw client c with pred(msg) true; fails on anything else."""
    msg = await c.recv(timeout)
    assert pred(msg), f"expected {what}, got {msg!r}"
    return msg


# --------------------------------------------------------------------------
# batched WebSocket (raw)
# --------------------------------------------------------------------------

JSON_SEP_AUTOBAHN = 0x18  # what Autobahn|Python sends (b"\30", an octal escape)
JSON_SEP_SPEC = 0x1E  # the record separator the spec's prose names


def pack_batch(serializer, encoded, json_sep=JSON_SEP_SPEC):
    """Encoded WAMP messages -> one batched WebSocket message."""
    out = bytearray()
    for e in encoded:
        if serializer == "json":
            out += e + bytes([json_sep])
        else:
            out += struct.pack(">I", len(e)) + e
    return bytes(out)


def split_batch(serializer, payload):
    """One batched WebSocket message from the router -> list of encoded messages.
    Asserts the framing (JSON: every message terminated by 0x18 or 0x1e;
    MessagePack: 4-byte big-endian length prefixes that add up exactly)."""
    out = []
    if serializer == "json":
        assert payload, "empty batch from the router"
        sep = payload[-1]
        assert sep in (JSON_SEP_AUTOBAHN, JSON_SEP_SPEC), f"JSON batch not terminated by a separator: {payload!r}"
        parts = payload.split(bytes([sep]))
        assert parts[-1] == b"", payload
        out = parts[:-1]
    else:
        i = 0
        while i < len(payload):
            assert i + 4 <= len(payload), f"truncated length prefix in {payload!r}"
            (n,) = struct.unpack(">I", payload[i:i + 4])
            assert i + 4 + n <= len(payload), f"length prefix {n} runs past the batch {payload!r}"
            out.append(payload[i + 4:i + 4 + n])
            i += 4 + n
    assert out, f"batch with no message: {payload!r}"
    return out


class BatchedWsClient(wampraw.RawWebSocketClient):
    """wampraw over wamp.2.<serializer>.batched: every WebSocket message is a
    batch. `batches` records how many WAMP messages each router batch held;
    `send_batch` sends several messages in one WebSocket message."""

    def __init__(self, serializer):
        super().__init__(serializer)
        self.batches = []

    @classmethod
    async def connect_batched(cls, router, serializer, timeout=10.0):
        host, port = router.ws_addr
        return await cls.connect(router.ws_url, host, port, serializer,
                                 protocols=[f"wamp.2.{serializer}.batched"], timeout=timeout)

    def _deliver(self, payload):
        parts = split_batch(self.serializer, payload)
        self.batches.append(len(parts))
        for p in parts:
            self._queue.put_nowait(wampraw.decode(self.serializer, p))

    def send_bytes(self, data):
        self.send_batch_bytes([data])

    def send_batch_bytes(self, encoded, json_sep=JSON_SEP_SPEC):
        self.proto.sendMessage(pack_batch(self.serializer, encoded, json_sep), isBinary=(self.serializer != "json"))

    async def send_batch(self, msgs, json_sep=JSON_SEP_SPEC):
        self.send_batch_bytes([wampraw.encode(self.serializer, m) for m in msgs], json_sep)
