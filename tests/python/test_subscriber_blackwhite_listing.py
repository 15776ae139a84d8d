# Advanced Profile, subscriber_blackwhite_listing: PUBLISH.Options exclude,
# eligible, exclude_authid, eligible_authid, exclude_authrole and
# eligible_authrole, each alone and combined (a subscriber gets the event only
# if every rule present admits it), through Autobahn|Python's PublishOptions on
# all six transport x serializer pairs; a malformed list with acknowledge=True
# is answered with wamp.error.invalid_argument.
#
# All sessions are anonymous: each has its own random authid and the authrole
# 'anonymous' (taken from WELCOME, i.e. the join details).
#
# Who got an event is decided with a barrier: after the restricted
# publication, the publisher publishes an unrestricted one to the same topic;
# a subscriber's next event is then either the restricted one followed by the
# barrier, or the barrier alone.
#
# Spec: rfc/text/advanced/pubsub_subscriber_blackwhite_listing.md.
import pytest
from autobahn.wamp.types import PublishOptions, SubscribeOptions

import wampraw
from autobahn_helpers import Sink, identity
from conftest import other_combo
from raw_clients import raw_peer

# a lost reply fails the test in 20 s instead of the suite-wide 60 s
pytestmark = pytest.mark.timeout(20)

N_SUBSCRIBERS = 4


class World:
    def __init__(self, topic, publisher, subscribers, sinks):
        self.topic = topic
        self.publisher = publisher
        self.subscribers = subscribers
        self.sinks = sinks
        self.ids = [s.session_id for s in subscribers]
        self.authids = [identity(s)[1] for s in subscribers]
        self.authroles = [identity(s)[2] for s in subscribers]

    async def receivers(self, **options):
        """Publish with `options`, return the indexes of the subscribers that got it."""
        pub = await self.publisher.publish(self.topic, "restricted",
                                           options=PublishOptions(acknowledge=True, **options))
        await self.publisher.publish(self.topic, "barrier", options=PublishOptions(acknowledge=True))
        got = []
        for i, sink in enumerate(self.sinks):
            args, _, details = await sink.get()
            if args == ["restricted"]:
                assert details.publication == pub.id
                got.append(i)
                args, _, _ = await sink.get()
            assert args == ["barrier"], (i, args)
        return got


@pytest.fixture
async def world(wamp, combo, unique):
    topic = unique()
    subscribers, sinks = [], []
    for i in range(N_SUBSCRIBERS):
        s = await wamp.session(combo=combo if i % 2 == 0 else other_combo(combo))
        sink = Sink()
        await s.subscribe(sink, topic, options=SubscribeOptions(details_arg="details"))
        subscribers.append(s)
        sinks.append(sink)
    publisher = await wamp.session()
    w = World(topic, publisher, subscribers, sinks)
    assert len(set(w.authids)) == N_SUBSCRIBERS, w.authids
    assert set(w.authroles) == {"anonymous"}, w.authroles
    return w


async def test_no_rules_everyone(world):
    assert await world.receivers() == [0, 1, 2, 3]


async def test_exclude(world):
    assert await world.receivers(exclude=[world.ids[1], world.ids[3]]) == [0, 2]
    assert await world.receivers(exclude=[world.ids[0]]) == [1, 2, 3]
    assert await world.receivers(exclude=[]) == [0, 1, 2, 3]


async def test_eligible(world):
    assert await world.receivers(eligible=[world.ids[2]]) == [2]
    assert await world.receivers(eligible=[world.ids[0], world.ids[3], world.publisher.session_id]) == [0, 3]
    # an eligible list naming nobody who is subscribed reaches nobody
    assert await world.receivers(eligible=[world.publisher.session_id]) == []


async def test_exclude_authid(world):
    assert await world.receivers(exclude_authid=[world.authids[0], world.authids[2]]) == [1, 3]
    assert await world.receivers(exclude_authid=["nobody-has-this-authid"]) == [0, 1, 2, 3]


async def test_eligible_authid(world):
    assert await world.receivers(eligible_authid=[world.authids[1]]) == [1]
    assert await world.receivers(eligible_authid=[world.authids[3], world.authids[0]]) == [0, 3]
    assert await world.receivers(eligible_authid=["nobody-has-this-authid"]) == []


async def test_exclude_authrole(world):
    assert await world.receivers(exclude_authrole=["anonymous"]) == []
    assert await world.receivers(exclude_authrole=["admin", "user"]) == [0, 1, 2, 3]


async def test_eligible_authrole(world):
    assert await world.receivers(eligible_authrole=["anonymous"]) == [0, 1, 2, 3]
    assert await world.receivers(eligible_authrole=["admin"]) == []


async def test_eligible_and_exclude(world):
    # the spec's third example: eligible minus excluded
    ids = world.ids
    assert await world.receivers(eligible=[ids[0], ids[1], ids[2]], exclude=[ids[0]]) == [1, 2]


async def test_rules_combine_with_and(world):
    ids, authids = world.ids, world.authids
    assert await world.receivers(eligible=[ids[0], ids[1], ids[2]], exclude_authid=[authids[1]]) == [0, 2]
    assert await world.receivers(eligible=[ids[0], ids[1]], eligible_authid=[authids[1], authids[2]]) == [1]
    assert await world.receivers(eligible_authid=[authids[0], authids[1]], exclude=[ids[0]]) == [1]
    assert await world.receivers(eligible_authrole=["anonymous"], exclude_authid=[authids[3]]) == [0, 1, 2]
    assert await world.receivers(eligible=ids, exclude_authrole=["anonymous"]) == []
    assert await world.receivers(eligible_authid=authids, eligible_authrole=["admin"]) == []
    # all six at once
    assert await world.receivers(
        eligible=[ids[0], ids[1], ids[2], ids[3]],
        exclude=[ids[3]],
        eligible_authid=[authids[0], authids[1], authids[3]],
        exclude_authid=[authids[0]],
        eligible_authrole=["anonymous", "admin"],
        exclude_authrole=["admin"],
    ) == [1]


async def test_rules_and_publisher_exclusion(world):
    me = world.publisher
    sink = Sink()
    await me.subscribe(sink, world.topic, options=SubscribeOptions(details_arg="details"))
    # eligible does not override exclude_me (default true) ...
    await me.publish(world.topic, "a", options=PublishOptions(acknowledge=True, eligible=[me.session_id]))
    # ... but with exclude_me=False the eligible publisher gets it
    await me.publish(world.topic, "b", options=PublishOptions(acknowledge=True, exclude_me=False,
                                                              eligible=[me.session_id]))
    args, _, _ = await sink.get()
    assert args == ["b"], sink.received
    # the subscribers got neither
    assert await world.receivers() == [0, 1, 2, 3]


async def test_rules_apply_to_pattern_subscriptions(wamp, combo, unique):
    base = unique()
    a = await wamp.session()
    b = await wamp.session(combo=other_combo(combo))
    publisher = await wamp.session()
    sinks = []
    for s in (a, b):
        sink = Sink()
        await s.subscribe(sink, base, options=SubscribeOptions(match="prefix", details_arg="details"))
        sinks.append(sink)
    await publisher.publish(f"{base}.x", "only b", options=PublishOptions(acknowledge=True, exclude=[a.session_id]))
    await publisher.publish(f"{base}.x", "only a",
                            options=PublishOptions(acknowledge=True, eligible_authid=[identity(a)[1]]))
    assert (await sinks[0].get())[0] == ["only a"]
    assert (await sinks[1].get())[0] == ["only b"]


MALFORMED = [
    {"exclude": "not a list"},
    {"exclude": ["x"]},
    {"eligible": 5},
    {"eligible": [1.5]},
    {"exclude_authid": [1]},
    {"eligible_authid": "alice"},
    {"exclude_authrole": [None]},
    {"eligible_authrole": {"a": 1}},
]


@pytest.mark.parametrize("options", MALFORMED, ids=[repr(m) for m in MALFORMED])
async def test_malformed_list_is_invalid_argument(wamp, combo, unique, options):
    topic = unique()
    sub = await raw_peer(wamp)
    rid = sub.request_id()
    assert (await sub.request([wampraw.SUBSCRIBE, rid, {}, topic]))[0] == wampraw.SUBSCRIBED
    pub = await raw_peer(wamp)
    rid = pub.request_id()
    reply = await pub.request([wampraw.PUBLISH, rid, {"acknowledge": True, **options}, topic, ["bad"]])
    assert reply[:3] == [wampraw.ERROR, wampraw.PUBLISH, rid], reply
    assert isinstance(reply[3], dict), reply
    assert reply[4] == "wamp.error.invalid_argument", reply
    # nothing was delivered: the subscriber's next event is the good one
    rid = pub.request_id()
    reply = await pub.request([wampraw.PUBLISH, rid, {"acknowledge": True}, topic, ["good"]])
    assert reply[:2] == [wampraw.PUBLISHED, rid], reply
    event = await sub.recv()
    assert event[0] == wampraw.EVENT and event[4] == ["good"], event
