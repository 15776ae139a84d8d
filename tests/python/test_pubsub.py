# Publish & subscribe through Junction with Autobahn|Python, for all six
# transport x serializer combinations: acknowledged publishing, exclude_me,
# shared subscription ids, unsubscribe, the broker's error URIs, and binary
# payloads crossing serializers (bytes published on one serializer arrive as
# the same bytes on every other one, JSON included).
#
# "No further delivery" is checked without sleeping: WAMP orders the events of
# one publisher for a subscriber across topics, so after the unwanted
# publication the publisher publishes to a barrier topic, and once the
# subscriber has the barrier event it would already have any earlier event.
import asyncio

import pytest
from autobahn.wamp.types import PublishOptions, SubscribeOptions

import wampraw
from conftest import ALL_COMBOS, assert_same
from payloads import BINARY, PAYLOAD_ARGS, PAYLOAD_KWARGS

ACK = PublishOptions(acknowledge=True)


class Sink:
    """Event handler that queues (args, kwargs, details)."""

    def __init__(self):
        self.queue = asyncio.Queue()
        self.received = []

    def __call__(self, *args, details=None, **kwargs):
        item = (list(args), kwargs, details)
        self.received.append(item)
        self.queue.put_nowait(item)

    async def get(self, timeout=10):
        return await asyncio.wait_for(self.queue.get(), timeout)


async def subscribe(session, topic):
    sink = Sink()
    sub = await session.subscribe(sink, topic, options=SubscribeOptions(details_arg="details"))
    return sink, sub


async def test_publish_acknowledged_and_delivered(wamp, combo, unique):
    sub_session = await wamp.session()
    pub_session = await wamp.session()
    topic = unique()
    sink, sub = await subscribe(sub_session, topic)
    assert type(sub.id) is int and 1 <= sub.id <= 2**53
    pub = await pub_session.publish(topic, *PAYLOAD_ARGS, options=ACK, **PAYLOAD_KWARGS)
    assert pub is not None, "publish with acknowledge=True must return a publication"
    assert type(pub.id) is int and 1 <= pub.id <= 2**53
    args, kwargs, details = await sink.get()
    assert_same(args, PAYLOAD_ARGS)
    assert_same(kwargs, PAYLOAD_KWARGS)
    assert details.publication == pub.id
    assert details.subscription.id == sub.id


async def test_publish_without_acknowledge(wamp, combo, unique):
    sub_session = await wamp.session()
    pub_session = await wamp.session()
    topic = unique()
    sink, _ = await subscribe(sub_session, topic)
    assert pub_session.publish(topic, "fire", n=1) is None
    args, kwargs, _ = await sink.get()
    assert args == ["fire"] and kwargs == {"n": 1}


async def test_acknowledged_publish_without_subscribers(wamp, combo, unique):
    pub_session = await wamp.session()
    pub = await pub_session.publish(unique(), 1, options=ACK)
    assert type(pub.id) is int


async def test_publications_arrive_in_order(wamp, combo, unique):
    sub_session = await wamp.session()
    pub_session = await wamp.session()
    topic = unique()
    sink, _ = await subscribe(sub_session, topic)
    for i in range(200):
        pub_session.publish(topic, i)
    await pub_session.publish(topic, "end", options=ACK)
    got = []
    while True:
        args, _, _ = await sink.get()
        if args == ["end"]:
            break
        got.append(args[0])
    assert got == list(range(200))


async def test_exclude_me_defaults_to_true(wamp, combo, unique):
    me = await wamp.session()
    other = await wamp.session()
    topic = unique()
    my_sink, _ = await subscribe(me, topic)
    other_sink, _ = await subscribe(other, topic)

    await me.publish(topic, "not for me", options=ACK)
    await me.publish(topic, "for me too", options=PublishOptions(acknowledge=True, exclude_me=False))

    assert (await other_sink.get())[0] == ["not for me"]
    assert (await other_sink.get())[0] == ["for me too"]
    # the first event the publisher itself gets is the exclude_me=False one
    assert (await my_sink.get())[0] == ["for me too"]
    assert my_sink.queue.empty()


async def test_exclude_me_false_delivers_to_publisher(wamp, combo, unique):
    me = await wamp.session()
    topic = unique()
    sink, sub = await subscribe(me, topic)
    pub = await me.publish(topic, "self", options=PublishOptions(acknowledge=True, exclude_me=False), k="v")
    args, kwargs, details = await sink.get()
    assert args == ["self"] and kwargs == {"k": "v"}
    assert details.publication == pub.id


async def test_same_topic_same_subscription_id(wamp, combo, unique):
    topic = unique()
    a = await wamp.session()
    b = await wamp.session()
    c = await wamp.session(combo=ALL_COMBOS[(ALL_COMBOS.index(combo) + 3) % 6])
    _, sub_a = await subscribe(a, topic)
    _, sub_b = await subscribe(b, topic)
    _, sub_c = await subscribe(c, topic)
    assert sub_a.id == sub_b.id == sub_c.id
    _, sub_other = await subscribe(a, unique())
    assert sub_other.id != sub_a.id


async def test_same_session_subscribing_twice_gets_same_id(wamp, combo, unique):
    raw = await wamp.raw()
    await raw.join()
    topic = unique()
    r1 = await raw.request([wampraw.SUBSCRIBE, raw.request_id(), {}, topic])
    r2 = await raw.request([wampraw.SUBSCRIBE, raw.request_id(), {}, topic])
    assert r1[0] == wampraw.SUBSCRIBED and r2[0] == wampraw.SUBSCRIBED, (r1, r2)
    assert r1[2] == r2[2]


async def test_unsubscribe_stops_delivery(wamp, combo, unique):
    subscriber = await wamp.session()
    publisher = await wamp.session()
    topic, barrier = unique(), unique()
    sink, sub = await subscribe(subscriber, topic)
    barrier_sink, _ = await subscribe(subscriber, barrier)

    await publisher.publish(topic, 1, options=ACK)
    assert (await sink.get())[0] == [1]

    await sub.unsubscribe()
    assert not sub.active
    await publisher.publish(topic, 2, options=ACK)
    await publisher.publish(barrier, "barrier", options=ACK)
    assert (await barrier_sink.get())[0] == ["barrier"]
    assert sink.queue.empty(), f"event after unsubscribe: {sink.received}"


async def test_unsubscribe_one_of_two_subscribers(wamp, combo, unique):
    leaver = await wamp.session()
    stayer = await wamp.session()
    publisher = await wamp.session()
    topic, barrier = unique(), unique()
    leaver_sink, leaver_sub = await subscribe(leaver, topic)
    leaver_barrier, _ = await subscribe(leaver, barrier)
    stayer_sink, stayer_sub = await subscribe(stayer, topic)
    assert leaver_sub.id == stayer_sub.id

    await leaver_sub.unsubscribe()
    await publisher.publish(topic, "after", options=ACK)
    await publisher.publish(barrier, "barrier", options=ACK)
    assert (await stayer_sink.get())[0] == ["after"]
    assert (await leaver_barrier.get())[0] == ["barrier"]
    assert leaver_sink.queue.empty(), leaver_sink.received


async def test_subscriber_leaving_stops_delivery(wamp, combo, unique):
    gone = await wamp.session()
    publisher = await wamp.session()
    watcher = await wamp.session()
    topic = unique()
    await subscribe(gone, topic)
    watch_sink, _ = await subscribe(watcher, topic)
    gone.leave()
    await asyncio.wait_for(asyncio.shield(gone.left), 10)
    await publisher.publish(topic, "still works", options=ACK)
    assert (await watch_sink.get())[0] == ["still works"]


async def test_no_such_subscription(wamp, combo, unique):
    raw = await wamp.raw()
    await raw.join()
    rid = raw.request_id()
    reply = await raw.request([wampraw.UNSUBSCRIBE, rid, 987654321])
    assert reply[:3] == [wampraw.ERROR, wampraw.UNSUBSCRIBE, rid], reply
    assert isinstance(reply[3], dict)
    assert reply[4] == "wamp.error.no_such_subscription", reply

    rid = raw.request_id()
    reply = await raw.request([wampraw.SUBSCRIBE, rid, {}, unique()])
    assert reply[:2] == [wampraw.SUBSCRIBED, rid], reply
    sub_id = reply[2]
    rid = raw.request_id()
    assert await raw.request([wampraw.UNSUBSCRIBE, rid, sub_id]) == [wampraw.UNSUBSCRIBED, rid]
    rid = raw.request_id()
    reply = await raw.request([wampraw.UNSUBSCRIBE, rid, sub_id])
    assert reply[:3] == [wampraw.ERROR, wampraw.UNSUBSCRIBE, rid], reply
    assert reply[4] == "wamp.error.no_such_subscription", reply


async def test_cannot_unsubscribe_someone_elses_subscription(wamp, combo, unique):
    topic = unique()
    owner = await wamp.raw()
    await owner.join()
    reply = await owner.request([wampraw.SUBSCRIBE, owner.request_id(), {}, topic])
    assert reply[0] == wampraw.SUBSCRIBED, reply
    other = await wamp.raw()
    await other.join()
    rid = other.request_id()
    reply = await other.request([wampraw.UNSUBSCRIBE, rid, reply[2]])
    assert reply[:3] == [wampraw.ERROR, wampraw.UNSUBSCRIBE, rid], reply
    assert reply[4] == "wamp.error.no_such_subscription", reply


async def test_raw_event_shape(wamp, combo, unique):
    """SUBSCRIBE/PUBLISH/PUBLISHED/EVENT as seen on the wire."""
    topic = unique()
    sub = await wamp.raw()
    await sub.join()
    pub = await wamp.raw()
    await pub.join()
    reply = await sub.request([wampraw.SUBSCRIBE, sub.request_id(), {}, topic])
    assert reply[0] == wampraw.SUBSCRIBED, reply
    sub_id = reply[2]
    rid = pub.request_id()
    reply = await pub.request([wampraw.PUBLISH, rid, {"acknowledge": True}, topic, ["a", 1], {"b": [None]}])
    assert reply[:2] == [wampraw.PUBLISHED, rid], reply
    pub_id = reply[2]
    assert type(pub_id) is int and 1 <= pub_id <= 2**53
    event = await sub.recv()
    assert event[:3] == [wampraw.EVENT, sub_id, pub_id], event
    assert isinstance(event[3], dict)
    assert event[4:] == [["a", 1], {"b": [None]}], event


@pytest.mark.parametrize("publisher_combo", ALL_COMBOS, ids=[c.id for c in ALL_COMBOS])
async def test_binary_payload_crosses_serializers(wamp, unique, publisher_combo):
    topic = unique()
    sinks = {}
    for c in ALL_COMBOS:
        s = await wamp.session(combo=c)
        sinks[c.id], _ = await subscribe(s, topic)
    publisher = await wamp.session(combo=publisher_combo)
    args = [BINARY, b"", b"\x00", "text that is not binary", [BINARY]]
    kwargs = {"blob": BINARY, "nested": {"list": [b"\xff\xfe", 1]}}
    await publisher.publish(topic, *args, options=ACK, **kwargs)
    for cid, sink in sinks.items():
        got_args, got_kwargs, _ = await sink.get()
        assert_same(got_args, args, f"{publisher_combo.id}->{cid} args")
        assert_same(got_kwargs, kwargs, f"{publisher_combo.id}->{cid} kwargs")


async def test_binary_rpc_crosses_serializers(wamp, unique):
    """Bytes in CALL args and in the YIELD, msgpack caller vs json/cbor callees."""
    callers = [await wamp.session(combo=c) for c in ALL_COMBOS if c.serializer == "msgpack"]
    for callee_combo in [c for c in ALL_COMBOS if c.serializer != "msgpack"]:
        callee = await wamp.session(combo=callee_combo)
        proc = unique()
        seen = []

        def reverse(blob):
            seen.append(blob)
            return blob[::-1]

        await callee.register(reverse, proc)
        for caller in callers:
            res = await caller.call(proc, BINARY)
            assert_same(res, BINARY[::-1], callee_combo.id)
        for blob in seen:
            assert_same(blob, BINARY, callee_combo.id)


async def test_publish_error_reply_needs_acknowledge(wamp, combo):
    """An invalid PUBLISH without acknowledge gets no reply; with it, an ERROR."""
    raw = await wamp.raw()
    await raw.join()
    await raw.send([wampraw.PUBLISH, raw.request_id(), {}, "com..bad", []])
    rid = raw.request_id()
    await raw.send([wampraw.PUBLISH, rid, {"acknowledge": True}, "com..bad"])
    # replies come in order: had the unacknowledged PUBLISH been answered,
    # that answer would come first
    reply = await raw.recv()
    assert reply[:3] == [wampraw.ERROR, wampraw.PUBLISH, rid], reply
    assert isinstance(reply[3], dict)
    assert reply[4] == "wamp.error.invalid_uri", reply


@pytest.mark.parametrize("transport", ["websocket", "rawsocket"])
async def test_msgpack_undefined_option_from_wampy_is_read_as_absent(wamp, unique, transport):
    """wampy.js (msgpackr) sends unset options as `undefined`, MessagePack
    extension type 0 with data 0 (d4 00 00): the SUBSCRIBE is served as if the
    option were absent, and the session goes on."""
    import msgpack

    from conftest import Combo
    from raw_clients import raw_on

    combo = Combo(transport, "msgpack")
    topic = unique()
    sub = await raw_on(wamp, combo=combo)
    undefined = msgpack.ExtType(0, b"\x00")
    reply = await sub.request([wampraw.SUBSCRIBE, 7, {"get_retained": undefined, "match": undefined}, topic])
    assert reply[0] == wampraw.SUBSCRIBED and reply[1] == 7, reply
    pub = await raw_on(wamp, combo=combo)
    await pub.send([wampraw.PUBLISH, 1, {"exclude_me": undefined}, topic, ["hi"]])
    event = await sub.recv(10)
    assert event[0] == wampraw.EVENT and event[1] == reply[2] and event[4] == ["hi"], event
