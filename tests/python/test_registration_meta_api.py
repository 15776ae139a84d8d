# Advanced Profile, registration_meta_api
# (rfc/text/advanced/ap_rpc_registration_meta_api.md), one router, Autobahn|Python
# on all six transport x serializer pairs:
# - wamp.registration.list -> {exact, prefix, wildcard} id lists
# - lookup(uri[, {match}]) -> id or null; match(uri) -> best matching id or null
#   (exact, then longest prefix, then wildcard)
# - get(id) -> {id, created (ISO 8601), uri, match, invoke}
# - list_callees(id) / count_callees(id)
# - unknown ids -> wamp.error.no_such_registration
# - events on_create [session, details], on_register [session, id],
#   on_unregister [session, id], on_delete [session, id], in that order
#   (on_register after on_create, on_delete after on_unregister).
#
# Meta events are watched through one prefix subscription on
# 'wamp.registration.' (EVENT.Details.topic names the concrete meta topic), so
# their relative order is visible; events caused by other tests sharing the
# module's router are filtered out by session id.
import asyncio
import datetime

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

from autobahn_helpers import call, leave, subscribe_log
from conftest import other_combo
from raw_clients import raw_on, raw_register

pytestmark = pytest.mark.timeout(20)

NO_SUCH_REGISTRATION = "wamp.error.no_such_registration"


def noop(*args, **kwargs):
    return None


async def reg(session, uri, match=None, invoke=None):
    return await asyncio.wait_for(
        session.register(noop, uri, options=RegisterOptions(match=match, invoke=invoke)), 10)


def parse_iso(ts):
    assert isinstance(ts, str) and ts, ts
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def test_list_by_match_policy(wamp, combo, unique):
    base = unique()
    callee = await wamp.session()
    observer = await wamp.session(combo=other_combo(combo))
    exact = await reg(callee, base + ".exact")
    prefix = await reg(callee, base + ".pre", match="prefix")
    wild = await reg(callee, base + "..wild", match="wildcard")
    lists = await call(observer, "wamp.registration.list")
    assert isinstance(lists, dict) and {"exact", "prefix", "wildcard"} <= set(lists), lists
    for key, r in (("exact", exact), ("prefix", prefix), ("wildcard", wild)):
        assert r.id in lists[key], (key, r.id, lists)
        for other in {"exact", "prefix", "wildcard"} - {key}:
            assert r.id not in lists[other], (key, other, lists)
    await prefix.unregister()
    lists = await call(observer, "wamp.registration.list")
    assert prefix.id not in lists["prefix"], lists
    assert exact.id in lists["exact"] and wild.id in lists["wildcard"], lists


async def test_lookup(wamp, combo, unique):
    base = unique()
    callee = await wamp.session()
    observer = await wamp.session(combo=other_combo(combo))
    exact = await reg(callee, base)
    prefix = await reg(callee, base, match="prefix")
    wild = await reg(callee, base + "..x", match="wildcard")
    assert exact.id != prefix.id
    assert await call(observer, "wamp.registration.lookup", base) == exact.id
    assert await call(observer, "wamp.registration.lookup", base, {"match": "exact"}) == exact.id
    assert await call(observer, "wamp.registration.lookup", base, {"match": "prefix"}) == prefix.id
    assert await call(observer, "wamp.registration.lookup", base + "..x", {"match": "wildcard"}) == wild.id
    # lookup is by the registered URI and policy, not by matching
    assert await call(observer, "wamp.registration.lookup", base + ".sub") is None
    assert await call(observer, "wamp.registration.lookup", base + ".sub", {"match": "prefix"}) is None
    assert await call(observer, "wamp.registration.lookup", base + "..x") is None
    assert await call(observer, "wamp.registration.lookup", base + ".y", {"match": "wildcard"}) is None


async def test_match_precedence(wamp, combo, unique):
    base, other = unique(), unique()
    callee = await wamp.session()
    observer = await wamp.session(combo=other_combo(combo))
    p_short = await reg(callee, base, match="prefix")
    p_long = await reg(callee, base + ".a", match="prefix")
    exact = await reg(callee, base + ".a.b")
    wild = await reg(callee, other + "..c", match="wildcard")
    m = lambda uri: call(observer, "wamp.registration.match", uri)  # noqa: E731
    assert await m(base + ".a.b") == exact.id
    assert await m(base + ".a.b.c") == p_long.id
    assert await m(base + ".a.x") == p_long.id
    assert await m(base + ".z") == p_short.id
    assert await m(other + ".any.c") == wild.id
    assert await m(other + ".any.d") is None
    assert await m(unique()) is None
    # without the exact registration the longest prefix wins
    await exact.unregister()
    assert await m(base + ".a.b") == p_long.id


async def test_get(wamp, combo, unique):
    base = unique()
    callee = await wamp.session()
    observer = await wamp.session(combo=other_combo(combo))
    before = datetime.datetime.now(datetime.timezone.utc)
    cases = [
        (await reg(callee, base + ".e"), base + ".e", "exact", "single"),
        (await reg(callee, base + ".p", match="prefix"), base + ".p", "prefix", "single"),
        (await reg(callee, base + "..w", match="wildcard", invoke="roundrobin"), base + "..w", "wildcard",
         "roundrobin"),
        (await reg(callee, base + ".f", invoke="first"), base + ".f", "exact", "first"),
        (await reg(callee, base + ".l", invoke="last"), base + ".l", "exact", "last"),
        (await reg(callee, base + ".r", invoke="random"), base + ".r", "exact", "random"),
    ]
    after = datetime.datetime.now(datetime.timezone.utc)
    for r, uri, match, invoke in cases:
        d = await call(observer, "wamp.registration.get", r.id)
        assert isinstance(d, dict), d
        assert d["id"] == r.id and d["uri"] == uri, d
        assert d["match"] == match and d["invoke"] == invoke, d
        created = parse_iso(d["created"])
        assert created.tzinfo is not None, d
        slack = datetime.timedelta(seconds=5)
        assert before - slack <= created <= after + slack, (d, before, after)


async def test_callees(wamp, combo, unique):
    proc = unique()
    callees = [await wamp.session(combo=combo if i % 2 == 0 else other_combo(combo)) for i in range(2)]
    regs = [await reg(c, proc, invoke="roundrobin") for c in callees]
    raw = await raw_on(wamp)
    raw_reg = await raw_register(raw, proc, {"invoke": "roundrobin"})
    assert len({r.id for r in regs} | {raw_reg}) == 1
    rid = raw_reg
    ids = [c.session_id for c in callees] + [raw.session_id]
    observer = await wamp.session()
    events = await subscribe_log(observer, "wamp.registration.on_unregister")
    got = await call(observer, "wamp.registration.list_callees", rid)
    assert isinstance(got, list) and sorted(got) == sorted(ids), got
    assert await call(observer, "wamp.registration.count_callees", rid) == 3
    gone = callees[0].session_id
    await regs[0].unregister()
    await events.wait_for(lambda a: a == [gone, rid], what="on_unregister of the first callee")
    assert sorted(await call(observer, "wamp.registration.list_callees", rid)) == sorted(ids[1:])
    assert await call(observer, "wamp.registration.count_callees", rid) == 2
    # a callee whose session ends is removed too
    gone = callees[1].session_id
    await leave(callees[1])
    await events.wait_for(lambda a: a == [gone, rid], what="on_unregister of the leaving callee")
    assert await call(observer, "wamp.registration.list_callees", rid) == [raw.session_id]
    assert await call(observer, "wamp.registration.count_callees", rid) == 1


async def test_unknown_registration(wamp, combo, unique):
    observer = await wamp.session()
    callee = await wamp.session(combo=other_combo(combo))
    r = await reg(callee, unique())
    known = set()
    for v in (await call(observer, "wamp.registration.list")).values():
        known.update(v)
    unknown = next(i for i in range(1, 1000) if i not in known)
    await r.unregister()
    for rid in (unknown, r.id):
        for proc in ("get", "list_callees", "count_callees"):
            with pytest.raises(ApplicationError) as exc:
                await call(observer, f"wamp.registration.{proc}", rid)
            assert exc.value.error == NO_SUCH_REGISTRATION, (proc, rid, exc.value)


async def test_meta_events(wamp, combo, unique):
    proc = unique()
    observer = await wamp.session(combo=other_combo(combo))
    log = await subscribe_log(observer, "wamp.registration.", match="prefix")
    a = await wamp.session()
    b = await wamp.session(combo=other_combo(combo))
    mine = {a.session_id, b.session_id}
    aid, bid = a.session_id, b.session_id

    reg_a = await reg(a, proc, invoke="roundrobin")
    reg_b = await reg(b, proc, invoke="roundrobin")
    assert reg_a.id == reg_b.id
    rid = reg_a.id
    await reg_b.unregister()
    await leave(a)
    # barrier: a registration by another session; its on_create comes after
    # everything the steps above published
    barrier = await wamp.session()
    bproc = unique()
    await reg(barrier, bproc)
    seen = []
    while True:
        args, kwargs, details = await log.get()
        topic = details.topic
        if args and args[0] == barrier.session_id and topic == "wamp.registration.on_create":
            assert args[1]["uri"] == bproc
            break
        if args and args[0] in mine:
            seen.append((topic, args))
    topics = [(t, a_[0]) for t, a_ in seen]
    assert topics == [
        ("wamp.registration.on_create", aid),
        ("wamp.registration.on_register", aid),
        ("wamp.registration.on_register", bid),
        ("wamp.registration.on_unregister", bid),
        ("wamp.registration.on_unregister", aid),
        ("wamp.registration.on_delete", aid),
    ], seen
    create = seen[0][1]
    assert len(create) == 2 and isinstance(create[1], dict), create
    d = create[1]
    assert d["id"] == rid and d["uri"] == proc and d["match"] == "exact" and d["invoke"] == "roundrobin", d
    parse_iso(d["created"])
    for _, args in seen[1:]:
        assert args[1] == rid and len(args) == 2, seen


async def test_meta_events_pattern_registration(wamp, combo, unique):
    base = unique()
    observer = await wamp.session(combo=other_combo(combo))
    on_create = await subscribe_log(observer, "wamp.registration.on_create")
    on_delete = await subscribe_log(observer, "wamp.registration.on_delete")
    raw = await raw_on(wamp)
    rid = await raw_register(raw, base, {"match": "prefix"})
    args, _, _ = await on_create.wait_for(lambda a: a[0] == raw.session_id, what="on_create of the raw callee")
    d = args[1]
    assert d["id"] == rid and d["uri"] == base and d["match"] == "prefix" and d["invoke"] == "single", d
    # the transport drops: the registration is deleted
    raw.abort()
    args, _, _ = await on_delete.wait_for(lambda a: a[0] == raw.session_id, what="on_delete after the abort")
    assert args == [raw.session_id, rid], args
