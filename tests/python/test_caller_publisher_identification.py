# Advanced Profile, caller_identification and publisher_identification:
# CALL.Options.disclose_me and REGISTER.Options.disclose_caller give the callee
# INVOCATION.Details.caller / caller_authid / caller_authrole;
# PUBLISH.Options.disclose_me gives subscribers EVENT.Details.publisher /
# publisher_authid / publisher_authrole; without them nothing is disclosed.
#
# Autobahn|Python 26 has no API for disclose_me / disclose_caller (neither
# CallOptions, PublishOptions nor RegisterOptions take them), so the Autobahn
# clients here send them through autobahn_helpers.extra_options; the receiving
# side is plain Autobahn (CallDetails / EventDetails). Raw tests check the wire.
#
# Spec: rfc/text/advanced/rpc_caller_identification.md,
#       rfc/text/advanced/pubsub_publisher_identification.md.
import pytest
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

import wampraw
from autobahn_helpers import Sink, call_with, identity, publish_with, register_with
from conftest import other_combo
from raw_clients import expect, expect_invocation, raw_call, raw_peer, raw_register, raw_subscribe

# a lost reply fails the test in 20 s instead of the suite-wide 60 s
pytestmark = pytest.mark.timeout(20)

ACK = PublishOptions(acknowledge=True)


def details_recorder(seen):
    def endpoint(*args, details=None, **kwargs):
        seen.append(details)
        return len(seen)

    return endpoint


def disclosed(details):
    return (details.caller, details.caller_authid, details.caller_authrole)


async def test_identity_in_welcome(wamp, combo):
    """The identities the other tests compare against: every anonymous session
    has its own authid and the role 'anonymous'."""
    a = await wamp.session()
    b = await wamp.session()
    ida, idb = identity(a), identity(b)
    assert isinstance(ida[1], str) and ida[1], ida
    assert ida[1] != idb[1]
    assert ida[2] == idb[2] == "anonymous"


async def test_call_disclose_me(wamp, combo, unique):
    proc = unique()
    callee = await wamp.session()
    caller = await wamp.session(combo=other_combo(combo))
    seen = []
    await callee.register(details_recorder(seen), proc, options=RegisterOptions(details_arg="details"))
    assert await call_with(caller, {"disclose_me": True}, proc, "x") == 1
    assert disclosed(seen[0]) == identity(caller)


async def test_call_without_disclosure(wamp, combo, unique):
    proc = unique()
    callee = await wamp.session()
    caller = await wamp.session()
    seen = []
    await callee.register(details_recorder(seen), proc, options=RegisterOptions(details_arg="details"))
    await caller.call(proc)
    await call_with(caller, {"disclose_me": False}, proc)
    assert [disclosed(d) for d in seen] == [(None, None, None)] * 2


async def test_register_disclose_caller(wamp, combo, unique):
    proc = unique()
    callee = await wamp.session()
    callers = [await wamp.session(), await wamp.session(combo=other_combo(combo))]
    seen = []
    await register_with(callee, {"disclose_caller": True}, details_recorder(seen), proc,
                        options=RegisterOptions(details_arg="details"))
    for c in callers:
        await c.call(proc)
    assert [disclosed(d) for d in seen] == [identity(c) for c in callers]


async def test_disclose_caller_is_per_callee(wamp, combo, unique):
    """In a shared registration, disclose_caller applies to the callee that asked."""
    proc = unique()
    asking = await wamp.session()
    not_asking = await wamp.session()
    caller = await wamp.session()
    seen_asking, seen_not = [], []
    await register_with(asking, {"disclose_caller": True}, details_recorder(seen_asking), proc,
                        options=RegisterOptions(details_arg="details", invoke="roundrobin"))
    await not_asking.register(details_recorder(seen_not), proc,
                              options=RegisterOptions(details_arg="details", invoke="roundrobin"))
    for _ in range(4):
        await caller.call(proc)
    assert [disclosed(d) for d in seen_asking] == [identity(caller)] * 2
    assert [disclosed(d) for d in seen_not] == [(None, None, None)] * 2


async def test_caller_disclosure_on_the_wire(wamp, combo, unique):
    proc = unique()
    callee = await raw_peer(wamp)
    caller = await raw_peer(wamp, combo=other_combo(combo))
    reg = await raw_register(callee, proc)
    for options, disclose in [({"disclose_me": True}, True), ({}, False)]:
        rid = await raw_call(caller, proc, [1], options)
        inv = await expect_invocation(callee, reg)
        if disclose:
            assert inv[3].get("caller") == caller.session_id, inv
            assert type(inv[3]["caller"]) is int, inv
            assert inv[3].get("caller_authid") == caller.authid, inv
            assert inv[3].get("caller_authrole") == caller.authrole == "anonymous", inv
        else:
            for key in ("caller", "caller_authid", "caller_authrole"):
                assert key not in inv[3], inv
        await callee.send([wampraw.YIELD, inv[1], {}])
        res = await expect(caller, wampraw.RESULT)
        assert res[1] == rid, res


async def subscribe(session, topic):
    sink = Sink()
    await session.subscribe(sink, topic, options=SubscribeOptions(details_arg="details"))
    return sink


async def test_publish_disclose_me(wamp, combo, unique):
    topic = unique()
    subscriber = await wamp.session()
    publisher = await wamp.session(combo=other_combo(combo))
    sink = await subscribe(subscriber, topic)
    pub = await publish_with(publisher, {"disclose_me": True}, topic, "hi", options=ACK)
    args, _, details = await sink.get()
    assert args == ["hi"]
    assert details.publication == pub.id
    assert (details.publisher, details.publisher_authid, details.publisher_authrole) == identity(publisher)


async def test_publish_without_disclosure(wamp, combo, unique):
    topic = unique()
    subscriber = await wamp.session()
    publisher = await wamp.session()
    sink = await subscribe(subscriber, topic)
    await publisher.publish(topic, 1, options=ACK)
    await publish_with(publisher, {"disclose_me": False}, topic, 2, options=ACK)
    for n in (1, 2):
        args, _, details = await sink.get()
        assert args == [n]
        assert (details.publisher, details.publisher_authid, details.publisher_authrole) == (None, None, None)


async def test_publisher_disclosure_to_pattern_subscribers(wamp, combo, unique):
    base = unique()
    subscriber = await wamp.session()
    publisher = await wamp.session()
    sink = Sink()
    await subscriber.subscribe(sink, base, options=SubscribeOptions(match="prefix", details_arg="details"))
    await publish_with(publisher, {"disclose_me": True}, f"{base}.x", options=ACK)
    _, _, details = await sink.get()
    assert details.topic == f"{base}.x"
    assert details.publisher == publisher.session_id


async def test_publisher_disclosure_on_the_wire(wamp, combo, unique):
    topic = unique()
    sub = await raw_peer(wamp)
    pub = await raw_peer(wamp, combo=other_combo(combo))
    sid = await raw_subscribe(sub, topic)
    for options, disclose in [({"disclose_me": True}, True), ({}, False)]:
        rid = pub.request_id()
        reply = await pub.request([wampraw.PUBLISH, rid, {"acknowledge": True, **options}, topic, ["e"]])
        assert reply[:2] == [wampraw.PUBLISHED, rid], reply
        event = await expect(sub, wampraw.EVENT)
        assert event[1:3] == [sid, reply[2]], event
        if disclose:
            assert event[3].get("publisher") == pub.session_id, event
            assert event[3].get("publisher_authid") == pub.authid, event
            assert event[3].get("publisher_authrole") == pub.authrole == "anonymous", event
        else:
            for key in ("publisher", "publisher_authid", "publisher_authrole"):
                assert key not in event[3], event
