# Advanced Profile, event_retention (rfc/text/advanced/ap_pubsub_event_retention.md),
# one router, Autobahn|Python on all six transport x serializer pairs
# (publisher and subscriber on different pairs):
# - PUBLISH.Options.retain=true keeps the event as the topic's retained event
#   (the most recent one wins; a publication without retain does not replace it);
# - SUBSCRIBE.Options.get_retained=true: the new subscriber gets the retained
#   event at once, with EVENT.Details.retained=true (Autobahn: EventDetails.retained);
# - without get_retained: nothing;
# - a prefix / wildcard subscription with get_retained gets the retained events
#   of every matching topic, each with Details.topic;
# - the spec's "MUST NOT send the Subscriber a Retained Event that they would
#   not be eligible to receive" (black/white listing of the retained publication).
#
# "Nothing else arrives" is checked with a barrier publication: the subscriber's
# next event must be the barrier.
import asyncio

import pytest
from autobahn.wamp.types import PublishOptions

from autobahn_helpers import subscribe_log
from conftest import assert_same, other_combo
from payloads import BINARY

pytestmark = pytest.mark.timeout(20)


async def publish(session, topic, *args, retain=None, eligible=None, exclude=None, **kwargs):
    opts = PublishOptions(acknowledge=True, retain=retain, eligible=eligible, exclude=exclude)
    return await asyncio.wait_for(session.publish(topic, *args, options=opts, **kwargs), 10)


async def next_is_barrier(publisher, log, topic, tag="barrier"):
    """Publishes a barrier on `topic`; asserts it is the next event `log` gets."""
    await publish(publisher, topic, tag)
    args, _, details = await log.get()
    assert args == [tag], f"expected only the barrier, got {args!r}"
    assert not details.retained, "a live event must not be marked retained"


async def test_get_retained_gets_the_latest(wamp, combo, unique):
    topic = unique()
    publisher = await wamp.session()
    await publish(publisher, topic, "first", retain=True)
    second = await publish(publisher, topic, "second", retain=True)
    # a publication without retain does not replace the retained event
    await publish(publisher, topic, "not retained")
    subscriber = await wamp.session(combo=other_combo(combo))
    log = await subscribe_log(subscriber, topic, get_retained=True)
    args, kwargs, details = await log.get()
    assert args == ["second"] and not kwargs, (args, kwargs)
    assert details.retained is True, vars(details)
    assert details.publication == second.id
    assert details.subscription.id == log.subscription.id
    await next_is_barrier(publisher, log, topic)


async def test_retained_payload_round_trip(wamp, combo, unique):
    topic = unique()
    publisher = await wamp.session(combo=other_combo(combo))
    args = ["text", 2**53, -1.5, None, True, BINARY, {"nested": [BINARY, {"x": ""}]}]
    kwargs = {"blob": BINARY, "unicode": "žluťoučký kůň", "list": [1, [2, [3]]]}
    await publish(publisher, topic, *args, retain=True, **kwargs)
    subscriber = await wamp.session()
    log = await subscribe_log(subscriber, topic, get_retained=True)
    got_args, got_kwargs, details = await log.get()
    assert details.retained is True
    assert_same(got_args, args)
    assert_same(got_kwargs, kwargs)


async def test_without_get_retained_nothing(wamp, combo, unique):
    topic = unique()
    publisher = await wamp.session()
    await publish(publisher, topic, "retained", retain=True)
    subscriber = await wamp.session(combo=other_combo(combo))
    log = await subscribe_log(subscriber, topic)
    await next_is_barrier(publisher, log, topic)
    log2 = await subscribe_log(await wamp.session(), topic, get_retained=False)
    await next_is_barrier(publisher, log2, topic, "barrier 2")


async def test_no_retained_event_no_event(wamp, combo, unique):
    topic = unique()
    publisher = await wamp.session()
    await publish(publisher, topic, "live only")
    log = await subscribe_log(await wamp.session(combo=other_combo(combo)), topic, get_retained=True)
    await next_is_barrier(publisher, log, topic)


async def test_joining_an_existing_subscription(wamp, combo, unique):
    """get_retained on a topic that already has subscribers: only the new one gets it."""
    topic = unique()
    publisher = await wamp.session()
    first = await subscribe_log(await wamp.session(), topic)
    await publish(publisher, topic, "kept", retain=True)
    assert (await first.get())[0] == ["kept"]
    second = await subscribe_log(await wamp.session(combo=other_combo(combo)), topic, get_retained=True)
    assert second.subscription.id == first.subscription.id
    args, _, details = await second.get()
    assert args == ["kept"] and details.retained is True
    await publish(publisher, topic, "barrier")
    assert (await first.get())[0] == ["barrier"], "the existing subscriber got the retained event again"
    assert (await second.get())[0] == ["barrier"]


@pytest.mark.parametrize("match,pattern_of", [
    ("prefix", lambda base: base),
    ("wildcard", lambda base: base + "."),
], ids=["prefix", "wildcard"])
async def test_pattern_subscription_gets_matching_retained(wamp, combo, unique, match, pattern_of):
    base = unique()
    publisher = await wamp.session()
    topics = {base + ".a": "A", base + ".b": "B"}
    for t, v in topics.items():
        await publish(publisher, t, v, retain=True)
    await publish(publisher, base + ".a", "A2", retain=True)
    await publish(publisher, unique() + ".a", "elsewhere", retain=True)
    await publish(publisher, base + ".c", "not retained")
    subscriber = await wamp.session(combo=other_combo(combo))
    log = await subscribe_log(subscriber, pattern_of(base), match=match)
    await next_is_barrier(publisher, log, base + ".z")  # get_retained not asked: nothing
    log = await subscribe_log(subscriber, pattern_of(base), match=match, get_retained=True)
    got = {}
    for _ in range(2):
        args, _, details = await log.get()
        assert details.retained is True, vars(details)
        assert details.topic not in got, f"two retained events for {details.topic}"
        got[details.topic] = args
    assert got == {base + ".a": ["A2"], base + ".b": ["B"]}, got
    # nothing else for this subscription: the next event is a barrier, with its topic
    await publish(publisher, base + ".z", "barrier")
    args, _, details = await log.get()
    assert args == ["barrier"] and details.topic == base + ".z" and not details.retained


async def test_retained_event_respects_eligibility(wamp, unique):
    """Spec: 'The Broker MUST NOT send the Subscriber a Retained Event that they
    would not be eligible to receive if they were subscribing when it was published.'"""
    topic = unique()
    publisher = await wamp.session()
    insider = await wamp.session()
    outsider = await wamp.session(combo=other_combo(wamp.combo))
    await publish(publisher, topic, "for the insider only", retain=True, eligible=[insider.session_id])
    log = await subscribe_log(outsider, topic, get_retained=True)
    await next_is_barrier(publisher, log, topic)
    # the eligible session does get it
    log_in = await subscribe_log(insider, topic, get_retained=True)
    args, _, details = await log_in.get()
    assert args == ["for the insider only"] and details.retained is True


async def test_retained_event_respects_exclusion(wamp, unique):
    topic = unique()
    publisher = await wamp.session()
    excluded = await wamp.session()
    await publish(publisher, topic, "not for you", retain=True, exclude=[excluded.session_id])
    log = await subscribe_log(excluded, topic, get_retained=True)
    await next_is_barrier(publisher, log, topic)
