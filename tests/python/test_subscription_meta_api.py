# Advanced Profile, subscription_meta_api
# (rfc/text/advanced/ap_pubsub_subscription_meta_api.md), one router, Autobahn|Python
# on all six transport x serializer pairs:
# - wamp.subscription.list -> {exact, prefix, wildcard} id lists
# - lookup(topic[, {match}]) -> id or null
# - match(topic) -> list of ids of every matching subscription, or null
# - get(id) -> {id, created (ISO 8601), uri, match}
# - list_subscribers(id) / count_subscribers(id)
# - unknown ids -> wamp.error.no_such_subscription
# - events on_create [session, details], on_subscribe [session, id],
#   on_unsubscribe [session, id], on_delete [session, id], in that order.
#
# Meta events are watched through one prefix subscription on
# 'wamp.subscription.' (EVENT.Details.topic names the concrete meta topic), so
# their relative order is visible; events of other tests are filtered out by
# session id.
import asyncio
import datetime

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions

from autobahn_helpers import call, leave, subscribe_log
from conftest import other_combo
from raw_clients import raw_on, raw_subscribe

pytestmark = pytest.mark.timeout(20)

NO_SUCH_SUBSCRIPTION = "wamp.error.no_such_subscription"


def noop(*args, **kwargs):
    return None


async def sub(session, topic, match=None):
    return await asyncio.wait_for(session.subscribe(noop, topic, options=SubscribeOptions(match=match)), 10)


def parse_iso(ts):
    assert isinstance(ts, str) and ts, ts
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def test_list_by_match_policy(wamp, combo, unique):
    base = unique()
    s = await wamp.session()
    observer = await wamp.session(combo=other_combo(combo))
    exact = await sub(s, base + ".exact")
    prefix = await sub(s, base + ".pre", match="prefix")
    wild = await sub(s, base + "..wild", match="wildcard")
    lists = await call(observer, "wamp.subscription.list")
    assert isinstance(lists, dict) and {"exact", "prefix", "wildcard"} <= set(lists), lists
    for key, r in (("exact", exact), ("prefix", prefix), ("wildcard", wild)):
        assert r.id in lists[key], (key, r.id, lists)
        for other in {"exact", "prefix", "wildcard"} - {key}:
            assert r.id not in lists[other], (key, other, lists)
    await prefix.unsubscribe()
    lists = await call(observer, "wamp.subscription.list")
    assert prefix.id not in lists["prefix"], lists
    assert exact.id in lists["exact"] and wild.id in lists["wildcard"], lists


async def test_lookup(wamp, combo, unique):
    base = unique()
    s = await wamp.session()
    observer = await wamp.session(combo=other_combo(combo))
    exact = await sub(s, base)
    prefix = await sub(s, base, match="prefix")
    wild = await sub(s, base + "..x", match="wildcard")
    assert len({exact.id, prefix.id, wild.id}) == 3
    lk = lambda *a: call(observer, "wamp.subscription.lookup", *a)  # noqa: E731
    assert await lk(base) == exact.id
    assert await lk(base, {"match": "exact"}) == exact.id
    assert await lk(base, {"match": "prefix"}) == prefix.id
    assert await lk(base + "..x", {"match": "wildcard"}) == wild.id
    assert await lk(base + ".sub") is None
    assert await lk(base + ".sub", {"match": "prefix"}) is None
    assert await lk(base + "..x") is None


async def test_match(wamp, combo, unique):
    base = unique()
    s = await wamp.session()
    observer = await wamp.session(combo=other_combo(combo))
    exact = await sub(s, base + ".a.b")
    p_short = await sub(s, base, match="prefix")
    p_long = await sub(s, base + ".a", match="prefix")
    wild = await sub(s, base + ".a..c", match="wildcard")
    m = lambda uri: call(observer, "wamp.subscription.match", uri)  # noqa: E731
    got = await m(base + ".a.b")
    assert isinstance(got, list) and sorted(got) == sorted([exact.id, p_short.id, p_long.id]), got
    got = await m(base + ".a.x.c")
    assert sorted(got) == sorted([p_short.id, p_long.id, wild.id]), got
    assert await m(base + ".z") == [p_short.id]
    assert await m(unique()) is None


async def test_get(wamp, combo, unique):
    base = unique()
    s = await wamp.session()
    observer = await wamp.session(combo=other_combo(combo))
    before = datetime.datetime.now(datetime.timezone.utc)
    cases = [
        (await sub(s, base + ".e"), base + ".e", "exact"),
        (await sub(s, base + ".p", match="prefix"), base + ".p", "prefix"),
        (await sub(s, base + "..w", match="wildcard"), base + "..w", "wildcard"),
    ]
    after = datetime.datetime.now(datetime.timezone.utc)
    for r, uri, match in cases:
        d = await call(observer, "wamp.subscription.get", r.id)
        assert isinstance(d, dict), d
        assert d["id"] == r.id and d["uri"] == uri and d["match"] == match, d
        created = parse_iso(d["created"])
        slack = datetime.timedelta(seconds=5)
        assert before - slack <= created <= after + slack, (d, before, after)


async def test_subscribers(wamp, combo, unique):
    topic = unique()
    subscribers = [await wamp.session(combo=combo if i % 2 == 0 else other_combo(combo)) for i in range(2)]
    subs = [await sub(s, topic) for s in subscribers]
    raw = await raw_on(wamp)
    sid = await raw_subscribe(raw, topic)
    assert {s.id for s in subs} == {sid}
    ids = [s.session_id for s in subscribers] + [raw.session_id]
    observer = await wamp.session()
    events = await subscribe_log(observer, "wamp.subscription.on_unsubscribe")
    got = await call(observer, "wamp.subscription.list_subscribers", sid)
    assert isinstance(got, list) and sorted(got) == sorted(ids), got
    assert await call(observer, "wamp.subscription.count_subscribers", sid) == 3
    gone = subscribers[0].session_id
    await subs[0].unsubscribe()
    await events.wait_for(lambda a: a == [gone, sid], what="on_unsubscribe of the first subscriber")
    assert sorted(await call(observer, "wamp.subscription.list_subscribers", sid)) == sorted(ids[1:])
    assert await call(observer, "wamp.subscription.count_subscribers", sid) == 2
    gone = subscribers[1].session_id
    await leave(subscribers[1])
    await events.wait_for(lambda a: a == [gone, sid], what="on_unsubscribe of the leaving subscriber")
    assert await call(observer, "wamp.subscription.list_subscribers", sid) == [raw.session_id]
    assert await call(observer, "wamp.subscription.count_subscribers", sid) == 1


async def test_unknown_subscription(wamp, combo, unique):
    observer = await wamp.session()
    s = await wamp.session(combo=other_combo(combo))
    r = await sub(s, unique())
    known = set()
    for v in (await call(observer, "wamp.subscription.list")).values():
        known.update(v)
    unknown = next(i for i in range(1, 1000) if i not in known)
    await r.unsubscribe()
    for sid in (unknown, r.id):
        for proc in ("get", "list_subscribers", "count_subscribers"):
            with pytest.raises(ApplicationError) as exc:
                await call(observer, f"wamp.subscription.{proc}", sid)
            assert exc.value.error == NO_SUCH_SUBSCRIPTION, (proc, sid, exc.value)


async def test_meta_events(wamp, combo, unique):
    topic = unique()
    observer = await wamp.session(combo=other_combo(combo))
    log = await subscribe_log(observer, "wamp.subscription.", match="prefix")
    a = await wamp.session()
    b = await wamp.session(combo=other_combo(combo))
    aid, bid = a.session_id, b.session_id
    mine = {aid, bid}
    sub_a = await sub(a, topic)
    sub_b = await sub(b, topic)
    assert sub_a.id == sub_b.id
    tid = sub_a.id
    await sub_b.unsubscribe()
    await leave(a)
    barrier = await wamp.session()
    btopic = unique()
    await sub(barrier, btopic)
    seen = []
    while True:
        args, kwargs, details = await log.get()
        t = details.topic
        if args and args[0] == barrier.session_id and t == "wamp.subscription.on_create":
            assert args[1]["uri"] == btopic
            break
        if args and args[0] in mine:
            seen.append((t, args))
    assert [(t, x[0]) for t, x in seen] == [
        ("wamp.subscription.on_create", aid),
        ("wamp.subscription.on_subscribe", aid),
        ("wamp.subscription.on_subscribe", bid),
        ("wamp.subscription.on_unsubscribe", bid),
        ("wamp.subscription.on_unsubscribe", aid),
        ("wamp.subscription.on_delete", aid),
    ], seen
    d = seen[0][1][1]
    assert isinstance(d, dict) and d["id"] == tid and d["uri"] == topic and d["match"] == "exact", d
    parse_iso(d["created"])
    for _, args in seen[1:]:
        assert args == [args[0], tid], seen


async def test_meta_events_pattern_subscription(wamp, combo, unique):
    base = unique()
    observer = await wamp.session(combo=other_combo(combo))
    on_create = await subscribe_log(observer, "wamp.subscription.on_create")
    on_delete = await subscribe_log(observer, "wamp.subscription.on_delete")
    raw = await raw_on(wamp)
    sid = await raw_subscribe(raw, base + "..x", {"match": "wildcard"})
    args, _, _ = await on_create.wait_for(lambda a: a[0] == raw.session_id, what="on_create of the raw subscriber")
    d = args[1]
    assert d["id"] == sid and d["uri"] == base + "..x" and d["match"] == "wildcard", d
    raw.abort()
    args, _, _ = await on_delete.wait_for(lambda a: a[0] == raw.session_id, what="on_delete after the abort")
    assert args == [raw.session_id, sid], args
