# Advanced Profile, pattern_based_subscription: SUBSCRIBE.Options.match
# 'prefix' and 'wildcard', one EVENT per matching subscription (same
# publication id, different subscription ids), EVENT.Details.topic carrying the
# concrete topic; Autobahn|Python on all six transport x serializer pairs, plus
# a raw look at the wire.
#
# "No (further) delivery" is checked with a barrier: events of one publisher
# reach a subscriber in order, so once the barrier event is in, any earlier
# event would be too.
#
# Spec: rfc/text/advanced/pubsub_pattern_based_subscription.md.
import pytest
from autobahn.wamp.types import PublishOptions, SubscribeOptions

import wampraw
from autobahn_helpers import Sink
from conftest import other_combo
from raw_clients import expect, raw_peer, raw_subscribe

# a lost reply fails the test in 20 s instead of the suite-wide 60 s
pytestmark = pytest.mark.timeout(20)

ACK = PublishOptions(acknowledge=True)


async def subscribe(session, topic, match=None):
    sink = Sink()
    sub = await session.subscribe(sink, topic, options=SubscribeOptions(match=match, details_arg="details"))
    return sink, sub


async def barrier(publisher, subscriber_sinks, topic):
    """Publish to `topic` (which every sink in subscriber_sinks is subscribed
    to, exactly) and wait for it at each sink."""
    await publisher.publish(topic, "barrier", options=ACK)
    for sink in subscriber_sinks:
        args, _, _ = await sink.get()
        assert args == ["barrier"], f"expected the barrier event, got {args!r} (earlier events: {sink.received})"


async def test_prefix_subscription(wamp, combo, unique):
    base = unique()
    sub_session = await wamp.session()
    publisher = await wamp.session(combo=other_combo(combo))
    sink, sub = await subscribe(sub_session, f"{base}.emergency", match="prefix")
    bsink, _ = await subscribe(sub_session, f"{base}.barrier")
    matching = [f"{base}.emergency", f"{base}.emergency.11", f"{base}.emergency-low",
                f"{base}.emergency.category.severe"]
    for topic in matching:
        pub = await publisher.publish(topic, topic, options=ACK, k=1)
        args, kwargs, details = await sink.get()
        assert args == [topic] and kwargs == {"k": 1}
        assert details.topic == topic
        assert details.subscription.id == sub.id
        assert details.publication == pub.id
    for topic in [f"{base}.emerge", f"{base}.emergenc", f"{base}.other.emergency"]:
        await publisher.publish(topic, topic, options=ACK)
    await barrier(publisher, [bsink], f"{base}.barrier")
    assert sink.empty(), f"events for non-matching topics: {sink.received[len(matching):]}"


async def test_wildcard_subscription(wamp, combo, unique):
    base = unique()
    sub_session = await wamp.session()
    publisher = await wamp.session(combo=other_combo(combo))
    sink, sub = await subscribe(sub_session, f"{base}..userevent", match="wildcard")
    bsink, _ = await subscribe(sub_session, f"{base}.barrier")
    matching = [f"{base}.foo.userevent", f"{base}.bar.userevent", f"{base}.a12.userevent"]
    for topic in matching:
        await publisher.publish(topic, topic, options=ACK)
        args, _, details = await sink.get()
        assert args == [topic]
        assert details.topic == topic
        assert details.subscription.id == sub.id
    for topic in [f"{base}.foo.userevent.bar", f"{base}.foo.user", f"{base}2.foo.userevent", f"{base}.userevent"]:
        await publisher.publish(topic, topic, options=ACK)
    await barrier(publisher, [bsink], f"{base}.barrier")
    assert sink.empty(), f"events for non-matching topics: {sink.received[len(matching):]}"


async def test_one_event_per_matching_subscription(wamp, combo, unique):
    base = unique()
    topic = f"{base}.a.b.c"
    me = await wamp.session()
    publisher = await wamp.session(combo=other_combo(combo))
    sinks = {}
    subs = {}
    for name, pattern, match in [
        ("exact", topic, None),
        ("prefix_short", f"{base}.a", "prefix"),
        ("prefix_long", f"{base}.a.b", "prefix"),
        ("wildcard", f"{base}.a..c", "wildcard"),
        ("wildcard2", f"{base}...c", "wildcard"),
    ]:
        sinks[name], subs[name] = await subscribe(me, pattern, match=match)
    assert len({s.id for s in subs.values()}) == len(subs), "each subscription has its own id"
    bsink, _ = await subscribe(me, f"{base}.barrier")

    pub = await publisher.publish(topic, "once", options=ACK)
    for name, sink in sinks.items():
        args, _, details = await sink.get()
        assert args == ["once"], name
        assert details.publication == pub.id, name
        assert details.subscription.id == subs[name].id, name
        if name != "exact":
            assert details.topic == topic, name
    await barrier(publisher, [bsink], f"{base}.barrier")
    for name, sink in sinks.items():
        assert sink.empty(), f"{name} got the event more than once: {sink.received}"


async def test_pattern_subscribers_share_a_subscription(wamp, combo, unique):
    base = unique()
    a = await wamp.session()
    b = await wamp.session(combo=other_combo(combo))
    publisher = await wamp.session()
    sink_a, sub_a = await subscribe(a, f"{base}.x", match="prefix")
    sink_b, sub_b = await subscribe(b, f"{base}.x", match="prefix")
    assert sub_a.id == sub_b.id
    # the same URI with another policy is another subscription
    sink_exact, sub_exact = await subscribe(a, f"{base}.x")
    sink_wild, sub_wild = await subscribe(a, f"{base}.x", match="wildcard")
    assert len({sub_a.id, sub_exact.id, sub_wild.id}) == 3

    await publisher.publish(f"{base}.x.y", 1, options=ACK)
    for sink in (sink_a, sink_b):
        args, _, details = await sink.get()
        assert args == [1] and details.topic == f"{base}.x.y"
    await publisher.publish(f"{base}.x", 2, options=ACK)
    for sink in (sink_a, sink_b, sink_exact, sink_wild):
        args, _, _ = await sink.get()
        assert args == [2]


async def test_unsubscribe_pattern_stops_delivery(wamp, combo, unique):
    base = unique()
    me = await wamp.session()
    publisher = await wamp.session()
    sink, sub = await subscribe(me, f"{base}.p", match="prefix")
    wsink, wsub = await subscribe(me, f"{base}..w", match="wildcard")
    bsink, _ = await subscribe(me, f"{base}.barrier")
    await sub.unsubscribe()
    await wsub.unsubscribe()
    await publisher.publish(f"{base}.p.q", 1, options=ACK)
    await publisher.publish(f"{base}.x.w", 2, options=ACK)
    await barrier(publisher, [bsink], f"{base}.barrier")
    assert sink.empty() and wsink.empty(), (sink.received, wsink.received)


async def test_publisher_exclusion_applies_to_pattern_subscriptions(wamp, combo, unique):
    base = unique()
    me = await wamp.session()
    sink, _ = await subscribe(me, f"{base}", match="prefix")
    await me.publish(f"{base}.t", "excluded", options=ACK)
    await me.publish(f"{base}.t", "included", options=PublishOptions(acknowledge=True, exclude_me=False))
    args, _, details = await sink.get()
    assert args == ["included"], sink.received
    assert details.topic == f"{base}.t"


async def test_event_details_on_the_wire(wamp, combo, unique):
    """EVENT.Details.topic is present for pattern subscriptions."""
    base = unique()
    sub = await raw_peer(wamp)
    pub = await raw_peer(wamp, combo=other_combo(combo))
    sid_prefix = await raw_subscribe(sub, f"{base}.p", {"match": "prefix"})
    sid_wild = await raw_subscribe(sub, f"{base}..w", {"match": "wildcard"})
    assert sid_prefix != sid_wild
    rid = pub.request_id()
    reply = await pub.request([wampraw.PUBLISH, rid, {"acknowledge": True}, f"{base}.p.w", ["x"]])
    assert reply[:2] == [wampraw.PUBLISHED, rid], reply
    events = [await expect(sub, wampraw.EVENT), await expect(sub, wampraw.EVENT)]
    assert sorted(e[1] for e in events) == sorted([sid_prefix, sid_wild]), events
    for e in events:
        assert e[2] == reply[2], e
        assert e[3].get("topic") == f"{base}.p.w", e
        assert e[4] == ["x"], e


async def test_invalid_subscribe_options(wamp, combo, unique):
    raw = await raw_peer(wamp)
    base = unique()
    rid = raw.request_id()
    reply = await raw.request([wampraw.SUBSCRIBE, rid, {"match": "regex"}, f"{base}.x"])
    assert reply[:3] == [wampraw.ERROR, wampraw.SUBSCRIBE, rid], reply
    assert reply[4] == "wamp.error.invalid_argument", reply
    for options in ({}, {"match": "prefix"}):
        rid = raw.request_id()
        reply = await raw.request([wampraw.SUBSCRIBE, rid, options, f"{base}..x"])
        assert reply[:3] == [wampraw.ERROR, wampraw.SUBSCRIBE, rid], (options, reply)
        assert reply[4] == "wamp.error.invalid_uri", (options, reply)
