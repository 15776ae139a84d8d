# Shared helpers for the second Advanced Profile interop suite
# (tests/python/test_adv2_*.py): meta API, testaments, event retention, payload
# passthru mode, batched WebSocket, and the cluster variants of the dealer and
# broker features.
#
# - `call` / `leave`: Autobahn call and leave with a bounded wait.
# - `EventLog`: an event handler (details_arg='details') that queues what it
#   gets and can wait for the first event satisfying a predicate; meta events
#   of other tests sharing the module's router are skipped that way.
# - `raw_on`: a wampraw client joined to realm1 on a given router/node,
#   announcing the given client roles (default: every advanced feature plus
#   payload_passthru_mode).
# - `wire_binary`: how a binary value looks on the wire for a serializer (JSON
#   has no binary type: WAMP sends "\0" + base64, and expects it back unchanged).
# - `BatchedWsClient`: a raw client over wamp.2.json.batched /
#   wamp.2.msgpack.batched that shows the batches as they are on the wire.
# - `module_cluster`: start / stop a 3-node cluster for a module fixture.
import asyncio
import base64
import struct

import pytest

import wampraw
from advanced_helpers import ALL_CLIENT_FEATURES
from cluster_helpers import start_cluster

CALL_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0

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


async def call(session, procedure, *args, **kwargs):
    return await asyncio.wait_for(session.call(procedure, *args, **kwargs), CALL_TIMEOUT)


async def leave(session, timeout=10.0):
    """GOODBYE from an Autobahn session; returns the router's CloseDetails."""
    session.leave()
    return await asyncio.wait_for(asyncio.shield(session.left), timeout)


class EventLog:
    """Event handler (use with details_arg='details') queueing
    (args, kwargs, details). `wait_for` picks the first event satisfying a
    predicate; events it passes over stay queued for later calls, in order."""

    def __init__(self):
        self.queue = asyncio.Queue()
        self.received = []
        self.backlog = []  # passed over by wait_for, not consumed yet

    def __call__(self, *args, details=None, **kwargs):
        item = (list(args), kwargs, details)
        self.received.append(item)
        self.queue.put_nowait(item)

    async def get(self, timeout=EVENT_TIMEOUT):
        if self.backlog:
            return self.backlog.pop(0)
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def wait_for(self, pred, timeout=EVENT_TIMEOUT, what="an event"):
        """The first event (args, kwargs, details) with pred(args) true."""
        for i, item in enumerate(self.backlog):
            if pred(item[0]):
                return self.backlog.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                item = await asyncio.wait_for(self.queue.get(), max(remaining, 0.001))
            except asyncio.TimeoutError:
                seen = [b[0] for b in self.backlog]
                raise AssertionError(f"no {what} within {timeout}s; other events queued: {seen!r}") from None
            if pred(item[0]):
                return item
            self.backlog.append(item)

    def empty(self):
        return not self.backlog and self.queue.empty()


async def subscribe_log(session, topic, **options):
    """Subscribes an EventLog to `topic` (SubscribeOptions(**options), details_arg='details')."""
    from autobahn.wamp.types import SubscribeOptions

    log = EventLog()
    sub = await asyncio.wait_for(
        session.subscribe(log, topic, options=SubscribeOptions(details_arg="details", **options)), CALL_TIMEOUT)
    log.subscription = sub
    return log


# --------------------------------------------------------------------------
# raw clients
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# clusters
# --------------------------------------------------------------------------


def module_cluster(name, **kw):
    """Generator for a module-scoped fixture: a started 3-node cluster, stopped
    at the end (failing the module when a node died that the tests did not kill)."""
    c = start_cluster(name, n=3, **kw)
    yield c
    crashed = c.stop()
    if crashed:
        pytest.fail("nodes died during the module: "
                    + ", ".join(f"node {n.node_id} exit {code} (log {n.log_path})" for n, code in crashed))
