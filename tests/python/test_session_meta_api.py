# Advanced Profile, session_meta_api (rfc/text/advanced/ap_session_meta_api.md):
# wamp.session.count / list (optional filter_authroles list), get, kill,
# kill_by_authid, kill_by_authrole, kill_all, and the meta events
# wamp.session.on_join (args [details]) and wamp.session.on_leave
# (args [session, authid, authrole]), through Autobahn|Python on all six
# transport x serializer pairs (raw clients where the wire matters).
#
# Every session here is anonymous: authrole 'anonymous' and a random authid per
# session. Tests counting sessions use a fresh router (start_router) so that
# sessions of other tests cannot be counted; a session leaving is awaited
# through its on_leave event (published after the router removed it), never by
# sleeping.
#
# Points where the brief and the spec text differ (the router follows the brief):
# - kill without a reason: GOODBYE.Reason 'wamp.close.killed' (spec prose says
#   the default is 'wamp.close.normal');
# - kill_by_authid returns the list of killed session ids (spec: a count).
import asyncio
import collections

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

import wampraw
from autobahn_helpers import call, leave, subscribe_log
from cluster_helpers import wait_until
from conftest import other_combo
from raw_clients import raw_on

pytestmark = pytest.mark.timeout(20)

NO_SUCH_SESSION = "wamp.error.no_such_session"


def welcome_of(session):
    return session.joined.result()


async def left(session, timeout=10.0):
    return await asyncio.wait_for(asyncio.shield(session.left), timeout)


def is_leave_of(session_id):
    return lambda args: len(args) >= 1 and args[0] == session_id


# --------------------------------------------------------------------------
# count / list / get
# --------------------------------------------------------------------------


async def test_count_and_list(start_router, wamp, combo):
    r = start_router()
    a = await wamp.session(router=r)
    b = await wamp.session(router=r, combo=other_combo(combo))
    c = await wamp.session(router=r)
    ids = sorted([a.session_id, b.session_id, c.session_id])
    assert len(set(ids)) == 3
    for s in (a, b):
        assert await call(s, "wamp.session.count") == 3
        lst = await call(s, "wamp.session.list")
        assert isinstance(lst, list) and sorted(lst) == ids, lst

    on_leave = await subscribe_log(a, "wamp.session.on_leave")
    cid = c.session_id
    await leave(c)
    await on_leave.wait_for(is_leave_of(cid), what=f"on_leave of {cid}")
    assert await call(a, "wamp.session.count") == 2
    assert sorted(await call(b, "wamp.session.list")) == sorted([a.session_id, b.session_id])


async def test_count_and_list_with_authrole_filter(start_router, wamp, combo):
    r = start_router()
    a = await wamp.session(router=r)
    b = await wamp.session(router=r, combo=other_combo(combo))
    ids = sorted([a.session_id, b.session_id])
    assert welcome_of(a).authrole == "anonymous" and welcome_of(b).authrole == "anonymous"
    assert await call(a, "wamp.session.count", ["anonymous"]) == 2
    assert sorted(await call(a, "wamp.session.list", ["anonymous"])) == ids
    assert await call(a, "wamp.session.count", ["admin", "anonymous"]) == 2
    assert sorted(await call(a, "wamp.session.list", ["admin", "anonymous"])) == ids
    assert await call(a, "wamp.session.count", ["admin"]) == 0
    assert await call(a, "wamp.session.list", ["admin"]) == []
    # an empty filter list matches no role
    assert await call(a, "wamp.session.count", []) == 0
    assert await call(a, "wamp.session.list", []) == []


async def test_get(wamp, combo):
    a = await wamp.session()
    b = await wamp.session(combo=other_combo(combo))
    for asker in (a, b):
        for target in (a, b):
            d = await call(asker, "wamp.session.get", target.session_id)
            w = welcome_of(target)
            assert isinstance(d, dict), d
            assert d.get("session") == target.session_id, d
            assert d.get("authid") == w.authid, (d, w)
            assert d.get("authrole") == w.authrole == "anonymous", (d, w)
            assert d.get("authmethod") == w.authmethod, (d, w)
            assert d.get("authprovider") == w.authprovider, (d, w)
            assert isinstance(d["authmethod"], str) and d["authmethod"], d
            assert isinstance(d["authprovider"], str) and d["authprovider"], d


async def test_get_unknown_session(wamp, combo):
    a = await wamp.session()
    known = set(await call(a, "wamp.session.list"))
    unknown = next(i for i in range(1, 100) if i not in known)
    with pytest.raises(ApplicationError) as exc:
        await call(a, "wamp.session.get", unknown)
    assert exc.value.error == NO_SUCH_SESSION, exc.value
    # a session that left is unknown too
    b = await wamp.session()
    on_leave = await subscribe_log(a, "wamp.session.on_leave")
    bid = b.session_id
    await leave(b)
    await on_leave.wait_for(is_leave_of(bid), what=f"on_leave of {bid}")
    with pytest.raises(ApplicationError) as exc:
        await call(a, "wamp.session.get", bid)
    assert exc.value.error == NO_SUCH_SESSION, exc.value


# --------------------------------------------------------------------------
# meta events
# --------------------------------------------------------------------------


async def test_on_join(wamp, combo):
    observer = await wamp.session(combo=other_combo(combo))
    on_join = await subscribe_log(observer, "wamp.session.on_join")
    newcomer = await wamp.session()
    args, kwargs, _ = await on_join.wait_for(
        lambda a: len(a) == 1 and isinstance(a[0], dict) and a[0].get("session") == newcomer.session_id,
        what=f"on_join of {newcomer.session_id}")
    d = args[0]
    w = welcome_of(newcomer)
    assert d["authid"] == w.authid, (d, w)
    assert d["authrole"] == w.authrole == "anonymous", (d, w)
    assert d["authmethod"] == w.authmethod, (d, w)
    assert d["authprovider"] == w.authprovider, (d, w)
    assert not kwargs, kwargs
    # the same details as wamp.session.get
    got = await call(observer, "wamp.session.get", newcomer.session_id)
    for k in ("session", "authid", "authrole", "authmethod", "authprovider"):
        assert got[k] == d[k], (k, got, d)


@pytest.mark.parametrize("how", ["goodbye", "abort_transport"])
async def test_on_leave(wamp, combo, how):
    observer = await wamp.session(combo=other_combo(combo))
    on_leave = await subscribe_log(observer, "wamp.session.on_leave")
    s = await wamp.session()
    sid, w = s.session_id, welcome_of(s)
    if how == "goodbye":
        await leave(s)
    else:
        s.abort_transport()
    args, kwargs, _ = await on_leave.wait_for(is_leave_of(sid), what=f"on_leave of {sid}")
    assert args == [sid, w.authid, "anonymous"], args
    assert not kwargs, kwargs


async def test_on_leave_of_a_raw_session(wamp, combo):
    observer = await wamp.session(combo=other_combo(combo))
    on_leave = await subscribe_log(observer, "wamp.session.on_leave")
    raw = await raw_on(wamp)
    await raw.send([wampraw.GOODBYE, {}, "wamp.close.close_realm"])
    reply = await raw.recv()
    assert reply[0] == wampraw.GOODBYE, reply
    args, _, _ = await on_leave.wait_for(is_leave_of(raw.session_id), what="on_leave of the raw session")
    assert args == [raw.session_id, raw.authid, raw.authrole], args


# --------------------------------------------------------------------------
# kill
# --------------------------------------------------------------------------


async def test_kill_with_reason_and_message(wamp, combo):
    killer = await wamp.session(combo=other_combo(combo))
    on_leave = await subscribe_log(killer, "wamp.session.on_leave")
    victim = await wamp.session()
    bystander = await wamp.session()
    vid, vauth = victim.session_id, welcome_of(victim).authid
    res = await call(killer, "wamp.session.kill", vid, reason="com.example.kicked", message="bye now")
    assert res is None, res
    details = await left(victim)
    assert details.reason == "com.example.kicked", details
    assert details.message == "bye now", details
    args, _, _ = await on_leave.wait_for(is_leave_of(vid), what=f"on_leave of the killed {vid}")
    assert args == [vid, vauth, "anonymous"], args
    assert vid not in await call(killer, "wamp.session.list")
    # nobody else was killed
    assert bystander.is_attached() and killer.is_attached()
    assert (await call(bystander, "wamp.session.get", bystander.session_id))["session"] == bystander.session_id


async def test_kill_default_reason(wamp, combo):
    killer = await wamp.session(combo=other_combo(combo))
    victim = await wamp.session()
    await call(killer, "wamp.session.kill", victim.session_id)
    details = await left(victim)
    assert details.reason == "wamp.close.killed", details
    assert not details.message, details


async def test_kill_goodbye_on_the_wire(wamp, combo):
    killer = await wamp.session(combo=other_combo(combo))
    victim = await raw_on(wamp)
    await call(killer, "wamp.session.kill", victim.session_id, reason="com.example.out", message="gone")
    bye = await victim.recv()
    assert bye[0] == wampraw.GOODBYE, bye
    assert bye[2] == "com.example.out", bye
    assert isinstance(bye[1], dict) and bye[1].get("message") == "gone", bye


async def test_a_killed_callee_hears_nothing_after_goodbye_and_calls_go_on_to_the_other_callee(
        start_router, wamp, combo):
    """A callee killed while calls stream in gets no INVOCATION (nor anything else)
    after its GOODBYE — a client that heard GOODBYE takes one for a protocol
    violation — and every call is answered: by the other callee of the shared
    registration, or with wamp.error.canceled for an invocation it held."""
    r = start_router()
    proc = "com.example.killed_callee"
    victim = await raw_on(wamp, router=r, combo=combo)
    reg = await victim.request([wampraw.REGISTER, victim.request_id(), {"invoke": "roundrobin"}, proc])
    assert reg[0] == wampraw.REGISTERED, reg
    other = await wamp.session(router=r, combo=other_combo(combo))
    await other.register(lambda n: ["other", n], proc, options=RegisterOptions(invoke="roundrobin"))
    caller = await wamp.session(router=r, combo=other_combo(combo))
    killer = await wamp.session(router=r)
    heard = []
    said_goodbye = asyncio.Event()

    async def serve():
        while True:
            try:
                m = await victim.recv(10)
            except wampraw.ConnectionClosed:
                return
            heard.append(m)
            if m[0] == wampraw.GOODBYE:
                said_goodbye.set()
            if m[0] == wampraw.INVOCATION:
                try:
                    await victim.send([wampraw.YIELD, m[1], {}, [["victim", m[4][0]]]])
                except Exception:  # noqa: BLE001 - the router closed the transport meanwhile:
                    pass  # what it sent before is still read

    server = asyncio.ensure_future(serve())
    killed = asyncio.Event()

    async def calls(n0):
        out = []  # (answer, whether the call was made after the victim heard GOODBYE)
        for n in range(n0, n0 + 100):
            if n == 50:
                killed.set()
            late = said_goodbye.is_set()
            try:
                out.append(((await asyncio.wait_for(caller.call(proc, n), 5))[0], late))
            except ApplicationError as e:
                out.append((e.error, late))
        return out

    streams = [asyncio.ensure_future(calls(k * 100)) for k in range(8)]
    await killed.wait()
    await call(killer, "wamp.session.kill", victim.session_id)
    answers = [a for s in await asyncio.gather(*streams) for a in s]
    await asyncio.wait_for(server, 10)
    kinds = [m[0] for m in heard]
    assert wampraw.GOODBYE in kinds, kinds[-5:]
    after = heard[kinds.index(wampraw.GOODBYE) + 1:]
    assert not after, f"the killed callee heard {len(after)} message(s) after GOODBYE: {after[:3]}"
    assert {a for a, _ in answers} <= {"victim", "other", "wamp.error.canceled"}, collections.Counter(answers)
    later = [a for a, late in answers if late]
    assert later, "no call was made after the kill"
    assert set(later) == {"other"}, f"calls made after the kill: {collections.Counter(later)}"


async def test_kill_unknown_session(wamp, combo):
    killer = await wamp.session()
    known = set(await call(killer, "wamp.session.list"))
    unknown = next(i for i in range(1, 100) if i not in known)
    with pytest.raises(ApplicationError) as exc:
        await call(killer, "wamp.session.kill", unknown)
    assert exc.value.error == NO_SUCH_SESSION, exc.value
    assert killer.is_attached()


async def test_kill_self_is_refused(wamp):
    """Spec: 'Specifying the caller's own session will result in a
    wamp.error.no_such_session since no other session with that ID exists.'"""
    s = await wamp.session()
    with pytest.raises(ApplicationError) as exc:
        await call(s, "wamp.session.kill", s.session_id)
    assert s.is_attached(), "a session killing itself must get an error, not be killed"
    assert (await call(s, "wamp.session.get", s.session_id))["session"] == s.session_id
    assert exc.value.error == NO_SUCH_SESSION, exc.value


async def test_kill_with_invalid_reason_uri(wamp):
    """Spec: wamp.error.invalid_uri when `reason` is not a valid non-empty URI."""
    killer = await wamp.session()
    victim = await wamp.session(combo=other_combo(wamp.combo))
    for bad in ("", "not a uri!", "com..double"):
        with pytest.raises(ApplicationError) as exc:
            await call(killer, "wamp.session.kill", victim.session_id, reason=bad)
        assert exc.value.error == "wamp.error.invalid_uri", (bad, exc.value)
        assert victim.is_attached(), f"victim killed although reason {bad!r} was refused"


# --------------------------------------------------------------------------
# kill_by_authid / kill_by_authrole / kill_all
# --------------------------------------------------------------------------


async def test_kill_by_authid(wamp, combo):
    killer = await wamp.session(combo=other_combo(combo))
    on_leave = await subscribe_log(killer, "wamp.session.on_leave")
    victim = await wamp.session()
    bystander = await wamp.session()
    vid, vauth = victim.session_id, welcome_of(victim).authid
    assert vauth != welcome_of(bystander).authid
    killed = await call(killer, "wamp.session.kill_by_authid", vauth, reason="com.example.by_authid", message="m")
    assert killed == [vid], killed
    details = await left(victim)
    assert (details.reason, details.message) == ("com.example.by_authid", "m"), details
    await on_leave.wait_for(is_leave_of(vid), what=f"on_leave of {vid}")
    assert bystander.is_attached()
    assert await call(bystander, "wamp.session.get", bystander.session_id)
    # the caller's own authid: the caller is excluded
    assert await call(killer, "wamp.session.kill_by_authid", welcome_of(killer).authid) == []
    assert killer.is_attached()
    # nobody has this authid
    assert await call(killer, "wamp.session.kill_by_authid", "no-such-authid") == []


async def test_kill_by_authrole(start_router, wamp, combo):
    r = start_router()
    killer = await wamp.session(router=r, combo=other_combo(combo))
    on_leave = await subscribe_log(killer, "wamp.session.on_leave")
    victims = [await wamp.session(router=r, combo=combo if i % 2 else other_combo(combo)) for i in range(3)]
    raw_victim = await raw_on(wamp, router=r)
    vids = [v.session_id for v in victims] + [raw_victim.session_id]
    assert await call(killer, "wamp.session.kill_by_authrole", "nobody") == 0
    n = await call(killer, "wamp.session.kill_by_authrole", "anonymous", reason="com.example.by_role",
                   message="role")
    assert n == 4, n
    for v in victims:
        details = await left(v)
        assert (details.reason, details.message) == ("com.example.by_role", "role"), details
    bye = await raw_victim.recv()
    assert bye[0] == wampraw.GOODBYE and bye[2] == "com.example.by_role", bye
    for sid in vids:
        await on_leave.wait_for(is_leave_of(sid), what=f"on_leave of {sid}")
    assert killer.is_attached()
    assert await call(killer, "wamp.session.list") == [killer.session_id]


async def test_kill_all(start_router, wamp, combo):
    """kill_all closes every other session. (The spec notes that kill_all
    "will not generate session meta events or testament events", so the
    sessions' removal is awaited by polling wamp.session.count, not on_leave.)"""
    r = start_router()
    killer = await wamp.session(router=r)
    victims = [await wamp.session(router=r, combo=combo if i % 2 else other_combo(combo)) for i in range(3)]
    n = await call(killer, "wamp.session.kill_all", reason="com.example.all", message="everyone out")
    assert n == 3, n
    for v in victims:
        details = await left(v)
        assert (details.reason, details.message) == ("com.example.all", "everyone out"), details
    assert killer.is_attached()

    async def only_the_killer_left():
        return await call(killer, "wamp.session.list") == [killer.session_id]

    await wait_until(only_the_killer_left, 10, "the killed sessions to be gone")
    assert await call(killer, "wamp.session.count") == 1
    # nobody left to kill
    assert await call(killer, "wamp.session.kill_all") == 0
