# Advanced Profile, batched WebSocket transport
# (rfc/text/advanced/ap_transport_batched_websocket.md): subprotocols
# wamp.2.json.batched and wamp.2.msgpack.batched.
#
# - Autobahn|Python with JsonSerializer(batched=True) / MsgPackSerializer(batched=True)
#   negotiates the batched subprotocol; RPC and pub/sub work, with batched and
#   plain peers mixed, and under many concurrent calls.
# - Raw batched clients check the framing on the wire: several WAMP messages
#   in one WebSocket message are all processed; every WebSocket message from
#   the router is a well-formed batch (JSON: each message terminated by a
#   separator; MessagePack: 4-byte big-endian length prefixes); a batch of zero
#   messages fails the transport.
#
# JSON separator: the spec's prose names the record separator 0x1e; Autobahn
# sends 0x18 (its b"\30" is an octal escape). The router must accept both and
# sends 0x18 so Autobahn can read it; split_batch accepts either from the router.
import asyncio

import pytest
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import CallOptions, CallResult, ComponentConfig, PublishOptions, RegisterOptions

import wampraw
from autobahn_helpers import call, subscribe_log
from conftest import ALL_COMBOS, JOIN_TIMEOUT, TestSession, assert_same
from raw_clients import JSON_SEP_AUTOBAHN, JSON_SEP_SPEC, BatchedWsClient, expect
from payloads import BINARY, PAYLOAD_ARGS, PAYLOAD_KWARGS

pytestmark = pytest.mark.timeout(30)

BATCHED = {"json": JsonSerializer, "msgpack": MsgPackSerializer}
batched_serializers = pytest.mark.parametrize("ser", list(BATCHED))


async def batched_session(wamp, ser):
    """An Autobahn session over wamp.2.<ser>.batched on the module's router."""
    loop = asyncio.get_running_loop()
    session = TestSession(ComponentConfig(realm="realm1"))
    factory = WampWebSocketClientFactory(lambda: session, url=wamp.router.ws_url,
                                         serializers=[BATCHED[ser](batched=True)])
    host, port = wamp.router.ws_addr
    _, proto = await asyncio.wait_for(loop.create_connection(factory, host, port), JOIN_TIMEOUT)
    session.proto = proto
    wamp._sessions.append(session)  # closed by the fixture
    await asyncio.wait_for(asyncio.shield(session.joined), JOIN_TIMEOUT)
    assert proto.websocket_protocol_in_use == f"wamp.2.{ser}.batched", proto.websocket_protocol_in_use
    return session


def plain(ser):
    """A non-batched combo (WebSocket) with the same serializer."""
    return next(c for c in ALL_COMBOS if c.transport == "websocket" and c.serializer == ser)


@batched_serializers
async def test_rpc_batched_both_ends(wamp, unique, ser):
    proc = unique()
    callee = await batched_session(wamp, ser)
    caller = await batched_session(wamp, ser)
    await callee.register(lambda *a, **kw: CallResult(*a, **kw), proc)
    args = [*PAYLOAD_ARGS, BINARY]
    kwargs = {**PAYLOAD_KWARGS, "blob": BINARY}
    res = await call(caller, proc, *args, **kwargs)
    assert_same(list(res.results), args)
    assert_same(res.kwresults, kwargs)


@batched_serializers
@pytest.mark.parametrize("batched_side", ["caller", "callee"])
async def test_rpc_batched_with_plain_peer(wamp, unique, ser, batched_side):
    proc = unique()
    b = await batched_session(wamp, ser)
    p = await wamp.session(combo=plain("msgpack" if ser == "json" else "json"))
    caller, callee = (b, p) if batched_side == "caller" else (p, b)
    await callee.register(lambda x, blob: [x * 2, blob[::-1]], proc)
    assert await call(caller, proc, 21, BINARY) == [42, BINARY[::-1]]


@batched_serializers
async def test_many_concurrent_calls(wamp, unique, ser):
    proc = unique()
    callee = await batched_session(wamp, ser)
    caller = await batched_session(wamp, ser)
    other = await wamp.session(combo=plain(ser))

    async def slowish(i):
        await asyncio.sleep(0)
        return ["r", i]

    await callee.register(slowish, proc)
    n = 500
    results = await asyncio.wait_for(
        asyncio.gather(*(caller.call(proc, i) for i in range(n)), *(other.call(proc, i) for i in range(n))), 20)
    assert results == [["r", i] for i in range(n)] * 2


@batched_serializers
async def test_progressive_results(wamp, unique, ser):
    proc = unique()
    callee = await batched_session(wamp, ser)
    caller = await batched_session(wamp, ser)

    def stream(n, details=None):
        for i in range(n):
            details.progress(i)
        return "done"

    await callee.register(stream, proc, options=RegisterOptions(details_arg="details"))
    got = []
    res = await asyncio.wait_for(caller.call(proc, 20, options=CallOptions(on_progress=got.append)), 10)
    assert res == "done" and got == list(range(20))


@batched_serializers
async def test_pubsub(wamp, unique, ser):
    topic = unique()
    publisher = await batched_session(wamp, ser)
    sub_batched = await subscribe_log(await batched_session(wamp, ser), topic)
    sub_plain = await subscribe_log(await wamp.session(combo=plain(ser)), topic)
    for i in range(100):
        publisher.publish(topic, i, blob=BINARY)
    await publisher.publish(topic, "last", options=PublishOptions(acknowledge=True))
    for log in (sub_batched, sub_plain):
        got = [await log.get() for _ in range(101)]
        assert [a for a, _, _ in got] == [[i] for i in range(100)] + [["last"]]
        assert all(kw == {"blob": BINARY} for _, kw, _ in got[:100])
    # a plain publisher reaches the batched subscriber too
    plain_pub = await wamp.session(combo=plain(ser))
    await plain_pub.publish(topic, "from plain", options=PublishOptions(acknowledge=True))
    assert (await sub_batched.get())[0] == ["from plain"]


# --------------------------------------------------------------------------
# raw batched clients: the wire
# --------------------------------------------------------------------------


async def raw_batched(wamp, ser, roles=None):
    c = await BatchedWsClient.connect_batched(wamp.router, ser)
    wamp._raws.append(c)
    assert c.subprotocol == f"wamp.2.{ser}.batched", c.subprotocol
    welcome = await c.hello()
    assert welcome[0] == wampraw.WELCOME, welcome
    c.session_id = welcome[1]
    c.welcome = welcome
    return c


@pytest.mark.parametrize("ser,sep", [("json", JSON_SEP_SPEC), ("json", JSON_SEP_AUTOBAHN), ("msgpack", None)],
                         ids=["json-0x1e", "json-0x18", "msgpack"])
async def test_several_messages_in_one_batch(wamp, unique, ser, sep):
    proc = unique()
    callee = await wamp.session()
    await callee.register(lambda x: x + 1, proc)
    c = await raw_batched(wamp, ser)
    msgs = [[wampraw.CALL, 100 + i, {}, proc, [i]] for i in range(5)]
    await c.send_batch(msgs, json_sep=sep if sep is not None else JSON_SEP_SPEC)
    got = sorted([await expect(c, wampraw.RESULT) for _ in range(5)], key=lambda m: m[1])
    assert [(m[1], m[3]) for m in got] == [(100 + i, [i + 1]) for i in range(5)], got
    # every WebSocket message from the router was a well-formed batch (checked
    # by BatchedWsClient) holding at least one WAMP message
    assert sum(c.batches) == 6 and all(n >= 1 for n in c.batches), c.batches  # WELCOME + 5 RESULTs


@pytest.mark.parametrize("ser", list(BATCHED))
async def test_subscribe_and_publish_in_one_batch(wamp, unique, ser):
    topic = unique()
    c = await raw_batched(wamp, ser)
    publisher = await wamp.session()
    await c.send_batch([[wampraw.SUBSCRIBE, 1, {}, topic], [wampraw.PUBLISH, 2, {"acknowledge": True,
                                                                               "exclude_me": False}, topic, ["mine"]]])
    first = await c.recv()
    assert first[0] == wampraw.SUBSCRIBED and first[1] == 1, first
    # PUBLISHED and the publisher's own EVENT, in either order
    got = {m[0]: m for m in [await c.recv(), await c.recv()]}
    assert set(got) == {wampraw.PUBLISHED, wampraw.EVENT}, got
    assert got[wampraw.PUBLISHED][1] == 2, got
    ev = got[wampraw.EVENT]
    assert ev[1] == first[2] and ev[4] == ["mine"], ev
    await publisher.publish(topic, "other", options=PublishOptions(acknowledge=True))
    ev = await expect(c, wampraw.EVENT)
    assert ev[4] == ["other"], ev


@pytest.mark.parametrize("ser", list(BATCHED))
async def test_empty_batch_fails_the_transport(wamp, ser):
    c = await raw_batched(wamp, ser)
    c.proto.sendMessage(b"", isBinary=(ser != "json"))
    msgs = await c.recv_until_closed()
    assert all(m[0] == wampraw.ABORT for m in msgs), msgs


@pytest.mark.parametrize("ser", list(BATCHED))
async def test_batched_welcome(wamp, ser):
    """WELCOME over a batched transport comes as a batch of one and announces
    the same roles as over a plain one."""
    c = await raw_batched(wamp, ser)
    assert c.batches[0] == 1, c.batches
    p = await wamp.raw()
    w = await p.join()
    assert c.welcome[2]["roles"] == w[2]["roles"]
