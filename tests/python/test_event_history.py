# Advanced Profile, event_history (rfc/text/advanced/pubsub_event_history.md):
# topics configured under [[realms.history]] keep their last `limit` events;
# the router pins a subscription for each at start, so its id can be looked up
# before anyone subscribes; wamp.subscription.get_events(subscription, filters)
# returns {timestamp, subscription, publication, topic, details, args, kwargs}
# oldest first, with the spec's filters (reverse, limit, from/after/before/until
# _time and _publication, topic). Publications with session-id black/white lists
# are not kept; authid/authrole rules are applied to the caller.
import datetime

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from autobahn_helpers import call
from conftest import ALL_COMBOS, connect_session

pytestmark = pytest.mark.timeout(20)

CONFIG = """
[[realms]]
name = "realm1"
[[realms.history]]
topic = "com.hist.log"
limit = 5
[[realms.history]]
topic = "com.hist.tree"
match = "prefix"
limit = 100
"""


@pytest.fixture(scope="module")
def hrouter(tmp_path_factory):
    from conftest import Router

    d = tmp_path_factory.mktemp("history")
    cfg = d / "junction.toml"
    cfg.write_text(CONFIG)
    r = Router(["--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0", "--config", str(cfg)], d / "router.log")
    yield r
    r.stop()


async def session(r, combo=ALL_COMBOS[0]):
    s = await connect_session(r, combo)
    return s


async def publish(s, topic, *args, **kw):
    return await s.publish(topic, *args, options=PublishOptions(acknowledge=True, **kw.pop("options", {})), **kw)


async def sub_id(s, topic, match="exact"):
    return await call(s, "wamp.subscription.lookup", topic, {"match": match})


async def test_broker_pins_history_subscriptions(hrouter):
    s = await session(hrouter)
    assert isinstance(await sub_id(s, "com.hist.log"), int)
    assert isinstance(await sub_id(s, "com.hist.tree", "prefix"), int)
    assert await sub_id(s, "com.hist.other") is None
    s.leave()


async def test_events_are_kept_and_bounded(hrouter, combo):
    pub = await session(hrouter, combo)
    sid = await sub_id(pub, "com.hist.log")
    ids = [(await publish(pub, "com.hist.log", i, tag=combo.id)).id for i in range(7)]
    events = await call(pub, "wamp.subscription.get_events", sid)
    mine = [e for e in events if e.get("kwargs", {}).get("tag") == combo.id]
    assert [e["publication"] for e in mine] == ids[-5:], "only the last 5 are kept, oldest first"
    e = mine[-1]
    assert e["subscription"] == sid and e["topic"] == "com.hist.log" and e["args"] == [6]
    ts = datetime.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.datetime.now(datetime.timezone.utc) - ts).total_seconds()) < 60
    pub.leave()


async def test_filters(hrouter):
    s = await session(hrouter)
    sid = await sub_id(s, "com.hist.tree", "prefix")
    before = await call(s, "wamp.subscription.get_events", sid)
    p = [(await publish(s, f"com.hist.tree.{t}", n)).id for n, t in enumerate("abab")]
    get = lambda **kw: call(s, "wamp.subscription.get_events", sid, **kw)  # noqa: E731
    pubs = lambda events: [e["publication"] for e in events]  # noqa: E731
    assert pubs(await get())[-4:] == p and len(await get()) == len(before) + 4
    assert pubs(await get(reverse=True, limit=2)) == [p[3], p[2]]
    assert pubs(await get(after_publication=p[1])) == p[2:]
    assert pubs(await get(from_publication=p[1])) == p[1:]
    assert pubs(await get(before_publication=p[2]))[-2:] == p[:2]
    assert pubs(await get(until_publication=p[2]))[-3:] == p[:3]
    assert pubs(await get(after_publication=p[0], before_publication=p[3])) == p[1:3]
    assert pubs(await get(topic="com.hist.tree.b")) == [p[1], p[3]]
    events = await get(after_publication=p[0])
    assert all(e["details"]["topic"].startswith("com.hist.tree.") for e in events)
    t0 = (await get(until_publication=p[0]))[-1]["timestamp"]
    assert p[0] in pubs(await get(from_time=t0)) and p[0] not in pubs(await get(after_time=t0))
    assert p[0] in pubs(await get(until_time=t0)) and p[0] not in pubs(await get(before_time=t0))
    future = "2999-01-01T00:00:00Z"
    assert await get(from_time=future) == []
    s.leave()


async def test_session_lists_are_not_kept_and_role_rules_apply(hrouter):
    s = await session(hrouter)
    sid = await sub_id(s, "com.hist.tree", "prefix")
    by_session = (await publish(s, "com.hist.tree.x", "ids", options={"exclude": [1]})).id
    for_admins = (await publish(s, "com.hist.tree.x", "admins", options={"eligible_authrole": ["admin"]})).id
    open_ = (await publish(s, "com.hist.tree.x", "all", options={"exclude_authid": ["nobody"]})).id
    got = [e["publication"] for e in await call(s, "wamp.subscription.get_events", sid, after_publication=by_session)]
    assert by_session not in got, "session-id rules: not kept"
    assert for_admins not in got, "an anonymous caller is not eligible"
    assert open_ in got
    s.leave()


async def test_errors(hrouter):
    s = await session(hrouter)
    sid = await sub_id(s, "com.hist.log")
    plain = await s.subscribe(lambda *a: None, "com.hist.nohistory")
    for args, kwargs, error in [
        ((plain.id,), {}, "wamp.error.invalid_argument"),
        ((sid + 10_000_000,), {}, "wamp.error.no_such_subscription"),
        ((sid,), {"from_time": "yesterday"}, "wamp.error.invalid_argument"),
        ((sid,), {"limit": 0}, "wamp.error.invalid_argument"),
        ((), {}, "wamp.error.invalid_argument"),
    ]:
        with pytest.raises(ApplicationError) as e:
            await call(s, "wamp.subscription.get_events", *args, **kwargs)
        assert e.value.error == error, (args, kwargs, e.value)
    s.leave()


async def test_subscribers_share_the_pinned_subscription(hrouter):
    s = await session(hrouter)
    sid = await sub_id(s, "com.hist.log")
    sub = await s.subscribe(lambda *a: None, "com.hist.log")
    assert sub.id == sid
    await sub.unsubscribe()
    # the pin keeps the subscription (and its history) after the last subscriber left
    assert await sub_id(s, "com.hist.log") == sid
    s.leave()


@pytest.mark.parametrize("bad,message", [
    ('[[realms.history]]\ntopic = "com.x"\nmatch = "fuzzy"\n', "fuzzy"),
    ('[[realms.history]]\ntopic = "com.x"\nlimit = 0\n', "limit"),
    ('[[realms.history]]\ntopic = "com..x"\n', "com..x"),
])
def test_bad_history_config_is_refused(start_router, bad, message):
    from conftest import RouterError

    with pytest.raises(RouterError) as e:
        start_router(config='[[realms]]\nname = "realm1"\n' + bad)
    assert message in str(e.value)
