# Advanced Profile, testament_meta_api (rfc/text/advanced/ap_pubsub_testament.md):
# wamp.session.add_testament(topic, args, kwargs, publish_options=?, scope=?)
# and wamp.session.flush_testaments(scope=?), through Autobahn|Python on all six
# transport x serializer pairs (testator and subscriber on different pairs).
#
# - the testaments are published when the session ends: GOODBYE, transport
#   lost, or killed through the session meta API;
# - 'detached' ones before 'destroyed' ones (the router has no session
#   resumption), each scope in the order added; default scope 'destroyed';
# - flush_testaments removes one scope (default 'destroyed'); the router
#   answers how many it removed (the spec says it returns nothing; an extra
#   result is harmless to clients);
# - publish_options (eligible / exclude ...) apply to the testament event;
# - a bad scope -> wamp.error.invalid_argument.
#
# "Nothing else was published" is checked with the testator's
# wamp.session.on_leave event: the router publishes it after the testaments,
# and a subscriber gets events in publication order, so each subscriber here
# receives the testament topic and on_leave through one queue.
import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from autobahn_helpers import call, leave
from conftest import assert_same, other_combo
from payloads import BINARY

pytestmark = pytest.mark.timeout(20)

ON_LEAVE = "wamp.session.on_leave"


class Watcher:
    """A subscriber getting `topic` and wamp.session.on_leave in one queue of
    (tag, args, kwargs); tag is 'event' or 'leave'."""

    def __init__(self, session):
        self.session = session
        self.queue = asyncio.Queue()

    def _handler(self, tag):
        def handler(*args, details=None, **kwargs):
            self.queue.put_nowait((tag, list(args), kwargs))

        return handler

    async def start(self, topic):
        opts = SubscribeOptions(details_arg="details")
        await self.session.subscribe(self._handler("event"), topic, options=opts)
        await self.session.subscribe(self._handler("leave"), ON_LEAVE, options=opts)
        return self

    async def until_leave_of(self, session_id, timeout=10.0):
        """Events on the topic received before session_id's on_leave, as (args, kwargs)."""
        events = []
        while True:
            tag, args, kwargs = await asyncio.wait_for(self.queue.get(), timeout)
            if tag == "leave":
                if args and args[0] == session_id:
                    return events
                continue
            events.append((args, kwargs))


async def watcher(wamp, topic, combo=None):
    return await Watcher(await wamp.session(combo=combo)).start(topic)


async def add(session, topic, args=None, kwargs=None, **kw):
    return await call(session, "wamp.session.add_testament", topic, args or [], kwargs or {}, **kw)


@pytest.mark.parametrize("how", ["goodbye", "abort_transport", "killed"])
async def test_destroyed_testament_fires(wamp, combo, unique, how):
    topic = unique()
    w = await watcher(wamp, topic, combo=other_combo(combo))
    testator = await wamp.session()
    tid = testator.session_id
    args, kwargs = ["seeya", 1, BINARY], {"name": "app1", "blob": BINARY, "nested": {"a": [1, 2.5, None]}}
    assert await add(testator, topic, args, kwargs) is None
    # nothing is published while the session lives: the first event is a normal publication
    await testator.publish(topic, "alive", options=PublishOptions(acknowledge=True))
    tag, got, _ = await asyncio.wait_for(w.queue.get(), 10)
    assert (tag, got) == ("event", ["alive"]), (tag, got)
    if how == "goodbye":
        await leave(testator)
    elif how == "abort_transport":
        testator.abort_transport()
    else:
        killer = await wamp.session()
        await call(killer, "wamp.session.kill", tid)
    events = await w.until_leave_of(tid)
    assert len(events) == 1, events
    assert_same(events[0][0], args)
    assert_same(events[0][1], kwargs)


async def test_scopes_and_order(wamp, combo, unique):
    topic = unique()
    w = await watcher(wamp, topic, combo=other_combo(combo))
    testator = await wamp.session()
    tid = testator.session_id
    await add(testator, topic, ["destroyed", 1], scope="destroyed")
    await add(testator, topic, ["detached", 1], scope="detached")
    await add(testator, topic, ["destroyed", 2])  # default scope: destroyed
    await add(testator, topic, ["detached", 2], scope="detached")
    await add(testator, topic, ["destroyed", 3], scope="destroyed")
    testator.abort_transport()
    events = await w.until_leave_of(tid)
    assert [a for a, _ in events] == [["detached", 1], ["detached", 2], ["destroyed", 1], ["destroyed", 2],
                                       ["destroyed", 3]], events


async def test_flush_destroyed(wamp, combo, unique):
    topic = unique()
    w = await watcher(wamp, topic, combo=other_combo(combo))
    testator = await wamp.session()
    tid = testator.session_id
    await add(testator, topic, ["destroyed", 1])
    await add(testator, topic, ["detached", 1], scope="detached")
    await add(testator, topic, ["destroyed", 2], scope="destroyed")
    assert await call(testator, "wamp.session.flush_testaments", scope="destroyed") == 2
    # nothing left in that scope
    assert await call(testator, "wamp.session.flush_testaments", scope="destroyed") == 0
    await add(testator, topic, ["destroyed", 3])
    # default scope is 'destroyed'
    assert await call(testator, "wamp.session.flush_testaments") == 1
    await leave(testator)
    events = await w.until_leave_of(tid)
    assert [a for a, _ in events] == [["detached", 1]], events


async def test_flush_detached(wamp, combo, unique):
    topic = unique()
    w = await watcher(wamp, topic, combo=other_combo(combo))
    testator = await wamp.session()
    tid = testator.session_id
    await add(testator, topic, ["detached", 1], scope="detached")
    await add(testator, topic, ["destroyed", 1])
    await add(testator, topic, ["detached", 2], scope="detached")
    assert await call(testator, "wamp.session.flush_testaments", scope="detached") == 2
    testator.abort_transport()
    events = await w.until_leave_of(tid)
    assert [a for a, _ in events] == [["destroyed", 1]], events


async def test_flush_everything_publishes_nothing(wamp, combo, unique):
    topic = unique()
    w = await watcher(wamp, topic, combo=other_combo(combo))
    testator = await wamp.session()
    tid = testator.session_id
    await add(testator, topic, ["a"], scope="detached")
    await add(testator, topic, ["b"], scope="destroyed")
    assert await call(testator, "wamp.session.flush_testaments", scope="detached") == 1
    assert await call(testator, "wamp.session.flush_testaments", scope="destroyed") == 1
    await leave(testator)
    assert await w.until_leave_of(tid) == []


async def test_publish_options_apply(wamp, combo, unique):
    topic = unique()
    w1 = await watcher(wamp, topic, combo=other_combo(combo))
    w2 = await watcher(wamp, topic, combo=combo)
    s1, s2 = w1.session.session_id, w2.session.session_id
    testator = await wamp.session()
    tid = testator.session_id
    await add(testator, topic, ["only s1"], publish_options={"eligible": [s1]})
    await add(testator, topic, ["not s1"], publish_options={"exclude": [s1]})
    await add(testator, topic, ["nobody"], publish_options={"eligible": [s1], "exclude": [s1]})
    await add(testator, topic, ["everyone"], {"k": 1}, publish_options={})
    await leave(testator)
    assert [a for a, _ in await w1.until_leave_of(tid)] == [["only s1"], ["everyone"]]
    assert [a for a, _ in await w2.until_leave_of(tid)] == [["not s1"], ["everyone"]]
    assert s2 != s1


async def test_bad_scope(wamp, combo, unique):
    topic = unique()
    w = await watcher(wamp, topic, combo=other_combo(combo))
    testator = await wamp.session()
    tid = testator.session_id
    with pytest.raises(ApplicationError) as exc:
        await add(testator, topic, ["never"], scope="sometime")
    assert exc.value.error == "wamp.error.invalid_argument", exc.value
    with pytest.raises(ApplicationError) as exc:
        await call(testator, "wamp.session.flush_testaments", scope="whenever")
    assert exc.value.error == "wamp.error.invalid_argument", exc.value
    assert testator.is_attached()
    await leave(testator)
    # the refused testament was not stored
    assert await w.until_leave_of(tid) == []


async def test_testaments_are_per_session(wamp, combo, unique):
    topic = unique()
    w = await watcher(wamp, topic, combo=other_combo(combo))
    a = await wamp.session()
    b = await wamp.session(combo=other_combo(combo))
    aid, bid = a.session_id, b.session_id
    await add(a, topic, ["from a"])
    await add(b, topic, ["from b"])
    # flushing b's does not touch a's
    assert await call(b, "wamp.session.flush_testaments") == 1
    await leave(b)
    assert await w.until_leave_of(bid) == []
    a.abort_transport()
    assert [x for x, _ in await w.until_leave_of(aid)] == [["from a"]]
