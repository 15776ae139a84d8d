# Session lifecycle against Junction over all six transport x serializer
# combinations: HELLO/WELCOME (roles, agent, session id), ABORT for unknown
# realms, GOODBYE handshake, a second HELLO being a protocol violation, and the
# --realm / --config / --unix command line options.
import asyncio
import signal

import pytest
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import ComponentConfig

import wampraw
from conftest import ALL_COMBOS, Combo, JoinFailed, TestSession

GOODBYE_REPLIES = {"wamp.close.goodbye_and_out", "wamp.error.goodbye_and_out"}
MAX_ID = 2**53


async def test_join_autobahn(wamp, combo):
    session = await wamp.session()
    assert session.is_attached()
    assert isinstance(session.session_id, int) and 1 <= session.session_id <= MAX_ID
    details = session.joined.result()
    assert details.realm == "realm1"
    roles = session.welcome.roles
    assert "broker" in roles, roles
    assert "dealer" in roles, roles


async def test_welcome_details_on_the_wire(wamp, combo):
    raw = await wamp.raw()
    welcome = await raw.join("realm1")
    assert welcome[0] == wampraw.WELCOME
    assert len(welcome) == 3, welcome
    session_id, details = welcome[1], welcome[2]
    assert type(session_id) is int and 1 <= session_id <= MAX_ID
    assert isinstance(details, dict)
    roles = details.get("roles")
    assert isinstance(roles, dict), details
    assert isinstance(roles.get("broker"), dict), roles
    assert isinstance(roles.get("dealer"), dict), roles
    assert isinstance(details.get("agent"), str) and details["agent"], details


async def test_session_ids_are_distinct(wamp, combo):
    ids = set()
    for _ in range(5):
        s = await wamp.session()
        ids.add(s.session_id)
    assert len(ids) == 5


async def test_unknown_realm_is_aborted(wamp, combo):
    with pytest.raises(JoinFailed) as exc:
        await wamp.session(realm="com.example.no_such_realm")
    assert exc.value.reason == "wamp.error.no_such_realm"

    raw = await wamp.raw()
    reply = await raw.hello("com.example.no_such_realm")
    assert reply[0] == wampraw.ABORT, reply
    assert isinstance(reply[1], dict)
    assert reply[2] == "wamp.error.no_such_realm"


async def test_goodbye_autobahn(wamp, combo):
    session = await wamp.session()
    session.leave("wamp.close.close_realm")
    details = await asyncio.wait_for(asyncio.shield(session.left), 10)
    assert details.reason in GOODBYE_REPLIES, details
    await asyncio.wait_for(asyncio.shield(session.disconnected), 10)


async def test_goodbye_on_the_wire(wamp, combo):
    raw = await wamp.raw()
    await raw.join()
    await raw.send([wampraw.GOODBYE, {"message": "bye"}, "wamp.close.close_realm"])
    reply = await raw.recv()
    assert reply[0] == wampraw.GOODBYE, reply
    assert isinstance(reply[1], dict)
    assert reply[2] in GOODBYE_REPLIES, reply


async def test_second_hello_is_protocol_violation(wamp, combo):
    raw = await wamp.raw()
    await raw.join()
    await raw.send([wampraw.HELLO, "realm1", {"roles": wampraw.CLIENT_ROLES}])
    msgs = await raw.recv_until_closed(10)
    assert msgs, "router closed the transport without ABORT"
    assert msgs[-1][0] == wampraw.ABORT, msgs
    assert msgs[-1][2] == "wamp.error.protocol_violation", msgs
    # the router stays healthy for everybody else
    s = await wamp.session()
    assert s.is_attached()


async def test_realm_flag_replaces_default_realms(start_router, wamp):
    r = start_router("--realm", "alpha", "--realm", "beta")
    for combo in (Combo("websocket", "json"), Combo("rawsocket", "cbor")):
        a = await wamp.session(combo=combo, router=r, realm="alpha")
        b = await wamp.session(combo=combo, router=r, realm="beta")
        assert a.is_attached() and b.is_attached()
        with pytest.raises(JoinFailed) as exc:
            await wamp.session(combo=combo, router=r, realm="realm1")
        assert exc.value.reason == "wamp.error.no_such_realm"


async def test_realms_are_isolated(start_router, wamp, unique):
    r = start_router("--realm", "alpha", "--realm", "beta")
    combo = Combo("websocket", "json")
    a = await wamp.session(combo=combo, router=r, realm="alpha")
    b = await wamp.session(combo=combo, router=r, realm="beta")
    proc = unique()
    await a.register(lambda: "from alpha", proc)
    # the same URI can be registered independently in another realm
    await b.register(lambda: "from beta", proc)
    a2 = await wamp.session(combo=combo, router=r, realm="alpha")
    assert await a2.call(proc) == "from alpha"
    assert await b.call(proc) == "from beta"


async def test_config_file_realms(start_router, wamp):
    r = start_router(config='[[realms]]\nname = "realm1"\n\n[[realms]]\nname = "strict"\nuri_check = "strict"\n')
    for combo in ALL_COMBOS:
        s1 = await wamp.session(combo=combo, router=r, realm="realm1")
        s2 = await wamp.session(combo=combo, router=r, realm="strict")
        assert s1.is_attached() and s2.is_attached()
    with pytest.raises(JoinFailed) as exc:
        await wamp.session(router=r, realm="other")
    assert exc.value.reason == "wamp.error.no_such_realm"


async def test_unix_socket_listener(start_router, tmp_path, unique):
    path = tmp_path / "junction.sock"
    r = start_router("--unix", str(path))
    assert r.unix_path == str(path), r.listeners
    loop = asyncio.get_running_loop()

    async def connect():
        session = TestSession(ComponentConfig(realm="realm1"))
        factory = WampRawSocketClientFactory(lambda: session, serializer=JsonSerializer())
        _, session.proto = await loop.create_unix_connection(factory, str(path))
        await asyncio.wait_for(asyncio.shield(session.joined), 20)
        return session

    callee = await connect()
    caller = await connect()
    try:
        proc = unique()
        await callee.register(lambda x: x * 2, proc)
        assert await caller.call(proc, 21) == 42
    finally:
        for s in (callee, caller):
            s.abort_transport()


async def test_router_shutdown_says_goodbye(start_router, wamp):
    """SIGTERM: the router closes joined sessions (GOODBYE) and exits 0."""
    r = start_router()
    raw = await wamp.raw(combo=Combo("rawsocket", "json"), router=r)
    await raw.join()
    r.proc.send_signal(signal.SIGTERM)
    try:
        goodbye = await raw.recv(15)
    except wampraw.ConnectionClosed:
        pytest.fail("router closed the session on shutdown without sending GOODBYE")
    assert goodbye[0] == wampraw.GOODBYE, goodbye
    assert isinstance(goodbye[2], str) and goodbye[2].startswith("wamp."), goodbye
    await raw.send([wampraw.GOODBYE, {}, "wamp.close.goodbye_and_out"])
    rest = await raw.recv_until_closed(15)
    assert rest == [], rest
    code = await asyncio.get_running_loop().run_in_executor(None, r.proc.wait, 15)
    assert code == 0, f"router exit code {code}; stderr:\n{r.stderr_tail()}"


def test_listening_lines(router, ws_url, rs_url):
    """The router reports the real (non-zero) ports it bound for port 0."""
    import re

    m = re.fullmatch(r"ws://127\.0\.0\.1:(\d+)/ws", ws_url)
    assert m and int(m.group(1)) > 0, ws_url
    m = re.fullmatch(r"rs://127\.0\.0\.1:(\d+)", rs_url)
    assert m and int(m.group(1)) > 0, rs_url
    assert router.ws_addr[1] != router.rs_addr[1]
    assert router.stdout_lines[-1] == "ready", router.stdout_lines


async def test_ws_path_flag(start_router, wamp):
    r = start_router("--ws-path", "/wamp/v2")
    assert r.ws_url.endswith("/wamp/v2"), r.ws_url
    s = await wamp.session(combo=Combo("websocket", "cbor"), router=r)
    assert s.is_attached()
