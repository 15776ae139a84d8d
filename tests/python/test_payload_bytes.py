# Payload passthrough (issue #16): the router forwards args/kwargs as the bytes they
# arrived in to a peer on the same serializer, and transcodes them for a peer on
# another. Checked on the wire with raw clients: an encoding Autobahn would never
# produce (a float32, an integer in 8 bytes, JSON with spaces; in MessagePack, JSON
# and CBOR) must come out
# byte-for-byte to a same-serializer subscriber or callee, and as the same values to
# the others.
import asyncio
import struct

import cbor2
import msgpack
import pytest

import wampraw
from cluster_helpers import start_cluster
from wampraw import CALL, EVENT, INVOCATION, PUBLISH, PUBLISHED, REGISTER, RESULT, SUBSCRIBE, YIELD

# [float32 1.5, uint64 7]: valid MessagePack no encoder of ours writes
ODD_ARGS = b"\x92\xca" + struct.pack(">f", 1.5) + b"\xcf" + struct.pack(">Q", 7)
ODD_KWARGS = b"\x81\xa1k\xcd\x00\x05"  # {"k": uint16 5}


class BytesClient(wampraw.RawWebSocketClient):
    """A raw WebSocket client that also keeps every frame's bytes."""

    def __init__(self, serializer):
        super().__init__(serializer)
        self.frames = asyncio.Queue()

    def _deliver(self, payload):
        self.frames.put_nowait(bytes(payload))
        super()._deliver(payload)

    async def next_of(self, code, timeout=10.0):
        """The next message of type `code`, and its bytes."""
        while True:
            msg = await self.recv(timeout)
            raw = await self.frames.get()
            if msg[0] == code:
                return msg, raw


async def connect(router, serializer):
    host, port = router.ws_addr
    c = await BytesClient.connect(router.ws_url, host, port, serializer)
    await c.join()
    await c.frames.get()  # WELCOME
    return c


async def subscribers(router, topic, serializers):
    """A subscriber of `topic` per serializer, by serializer."""
    subs = {}
    for ser in serializers:
        c = await connect(router, ser)
        reply = await c.request([SUBSCRIBE, c.request_id(), {}, topic])
        await c.frames.get()
        subs[ser] = c
        assert reply[0] == wampraw.SUBSCRIBED, reply
    return subs


async def odd_payload_delivered(subs, publisher_serializer, payload):
    """Each subscriber got [1.5, 7], {"k": 5}; the one on the publisher's serializer
    as the `payload` bytes the publisher sent."""
    for ser, c in subs.items():
        event, raw = await c.next_of(EVENT)
        assert event[4:] == [[1.5, 7], {"k": 5}], ser
        if ser == publisher_serializer:
            assert raw.endswith(payload), raw.hex()


def mp_list(*elements):
    """A MessagePack list of already-encoded elements (fewer than 16)."""
    return bytes([0x90 | len(elements)]) + b"".join(elements)


async def test_a_msgpack_payload_reaches_msgpack_subscribers_byte_for_byte_and_json_ones_as_values(router, unique):
    topic = unique("passthrough.topic")
    subs = await subscribers(router, topic, ("msgpack", "json", "cbor"))
    pub = await connect(router, "msgpack")
    frame = mp_list(
        msgpack.packb(PUBLISH),
        msgpack.packb(1),
        msgpack.packb({"acknowledge": True}),
        msgpack.packb(topic),
        ODD_ARGS,
        ODD_KWARGS,
    )
    pub.send_bytes(frame)
    published, _ = await pub.next_of(PUBLISHED)
    assert published[1] == 1
    await odd_payload_delivered(subs, "msgpack", ODD_ARGS + ODD_KWARGS)
    for c in (*subs.values(), pub):
        await c.close()


# [float32 1.5, uint64 7 in 8 bytes], {"k": 5 in 2 bytes}: valid CBOR cbor2 and our
# encoder would write shorter
CBOR_ODD_ARGS = b"\x82\xfa" + struct.pack(">f", 1.5) + b"\x1b" + struct.pack(">Q", 7)
CBOR_ODD_KWARGS = b"\xa1\x61k\x19\x00\x05"


async def test_a_cbor_payload_reaches_cbor_subscribers_byte_for_byte_and_others_as_values(router, unique):
    topic = unique("passthrough.cbor.topic")
    subs = await subscribers(router, topic, ("cbor", "msgpack", "json"))
    pub = await connect(router, "cbor")
    head = b"".join(cbor2.dumps(v) for v in (PUBLISH, 1, {"acknowledge": True}, topic))
    pub.send_bytes(b"\x86" + head + CBOR_ODD_ARGS + CBOR_ODD_KWARGS)
    published, _ = await pub.next_of(PUBLISHED)
    assert published[1] == 1
    await odd_payload_delivered(subs, "cbor", CBOR_ODD_ARGS + CBOR_ODD_KWARGS)
    # a tag (1: epoch time) is normalized as without passthrough: its content alone
    tagged = b"\x81\xc1\x1a\x00\x01\x00\x00"
    pub.send_bytes(b"\x85" + head.replace(cbor2.dumps(1), cbor2.dumps(2), 1) + tagged)
    await pub.next_of(PUBLISHED)
    event, raw = await subs["cbor"].next_of(EVENT)
    assert event[4] == [65536] and not raw.endswith(tagged), raw.hex()
    for c in (*subs.values(), pub):
        await c.close()


async def test_a_json_call_and_its_result_pass_through_as_written(router, unique):
    proc = unique("passthrough.proc")
    callee = await connect(router, "json")
    reply = await callee.request([REGISTER, callee.request_id(), {}, proc])
    await callee.frames.get()
    assert reply[0] == wampraw.REGISTERED, reply
    caller = await connect(router, "json")
    args, kwargs = '[ 1.50, "x" ,{"a" : [ ]} ]', '{ "k":null }'
    caller.send_bytes(f'[{CALL}, 9, {{}}, "{proc}", {args},  {kwargs}]'.encode())
    invocation, raw = await callee.next_of(INVOCATION)
    assert raw.decode().endswith(f"{args},{kwargs}]"), raw
    assert invocation[4:] == [[1.5, "x", {"a": []}], {"k": None}]
    result_args = '[ 2.0e0 ]'
    callee.send_bytes(f"[{YIELD}, {invocation[1]}, {{}}, {result_args}]".encode())
    result, raw = await caller.next_of(RESULT)
    assert result[1] == 9
    assert raw.decode().endswith(f"{result_args}]"), raw
    assert result[3] == [2.0]
    # a MessagePack caller gets the same result as values
    mp_caller = await connect(router, "msgpack")
    mp_caller.send_bytes(mp_list(msgpack.packb(CALL), msgpack.packb(10), msgpack.packb({}), msgpack.packb(proc), ODD_ARGS))
    invocation, _ = await callee.next_of(INVOCATION)
    assert invocation[4] == [1.5, 7]
    callee.send_bytes(f"[{YIELD}, {invocation[1]}, {{}}, [3]]".encode())
    result, _ = await mp_caller.next_of(RESULT)
    assert result[3] == [3]
    for c in (callee, caller, mp_caller):
        await c.close()


@pytest.fixture(scope="module")
def cluster():
    c = start_cluster("test_payload_bytes", n=2)
    yield c
    crashed = c.stop()
    if crashed:
        pytest.fail("nodes died during the module: " + ", ".join(f"node {n.node_id} exit {code}" for n, code in crashed))


async def test_a_json_payload_crosses_nodes_as_written(cluster, unique):
    """Between nodes a JSON client's payload travels as its JSON text: a JSON
    subscriber and callee on the other node get it byte for byte."""
    topic, proc = unique("passthrough.cluster.topic"), unique("passthrough.cluster.proc")
    sub = await connect(cluster[2], "json")
    mp_sub = await connect(cluster[2], "msgpack")
    for c in (sub, mp_sub):
        reply = await c.request([SUBSCRIBE, c.request_id(), {}, topic])
        await c.frames.get()
        assert reply[0] == wampraw.SUBSCRIBED, reply
    pub = await connect(cluster[1], "json")
    args, kwargs = '[ "é", 1.50 ]', '{"deep": {"x": [ ] }}'
    pub.send_bytes(f'[{PUBLISH}, 1, {{"acknowledge": true}}, "{topic}", {args}, {kwargs}]'.encode())
    await pub.next_of(PUBLISHED)
    event, raw = await sub.next_of(EVENT)
    assert raw.decode().endswith(f"{args},{kwargs}]"), raw
    event, _ = await mp_sub.next_of(EVENT)
    assert event[4:] == [["é", 1.5], {"deep": {"x": []}}]
    callee = await connect(cluster[2], "json")
    reply = await callee.request([REGISTER, callee.request_id(), {}, proc])
    await callee.frames.get()
    assert reply[0] == wampraw.REGISTERED, reply
    await cluster.sync()
    caller = await connect(cluster[1], "json")
    caller.send_bytes(f'[{CALL}, 5, {{}}, "{proc}", {args}]'.encode())
    invocation, raw = await callee.next_of(INVOCATION)
    assert raw.decode().endswith(f"{args}]"), raw
    callee.send_bytes(f"[{YIELD}, {invocation[1]}, {{}}, [ true ], {kwargs}]".encode())
    result, raw = await caller.next_of(RESULT)
    assert raw.decode().endswith(f"[ true ],{kwargs}]"), raw
    for c in (sub, mp_sub, pub, callee, caller):
        await c.close()
