"""Limits and abuse (`[limits]`): each limit on a router of its own, configured low,
checked on the wire with raw clients (the exact ABORT/ERROR reason, the transport
closed), and each time a client that stays within the limits is still served.

- handshake_timeout_ms: no HELLO, an unanswered CHALLENGE, no HELLO after GOODBYE
  -> ABORT junction.error.handshake_timeout; a stalled RawSocket/WebSocket opening
  handshake -> connection closed
- websocket_max_message_size / rawsocket_max_message_size: separate limits, ABORT
  wamp.error.protocol_violation (WebSocket close code 1009), RawSocket announces its own
- max_sessions, max_sessions_per_ip: ABORT junction.error.too_many_sessions at HELLO
- max_pending_calls: ERROR junction.error.too_many_pending_calls for the next CALL
- auth_failures_per_ip: ABORT junction.error.rate_limited at HELLO from that address
"""

import asyncio

import pytest

import wampraw
from wampraw import ABORT, CALL, ERROR, GOODBYE, HELLO, INVOCATION, REGISTER, REGISTERED, RESULT, WELCOME, YIELD

CHALLENGE = 4
AUTHENTICATE = 5

HANDSHAKE_TIMEOUT = "junction.error.handshake_timeout"
TOO_MANY_SESSIONS = "junction.error.too_many_sessions"
TOO_MANY_PENDING_CALLS = "junction.error.too_many_pending_calls"
RATE_LIMITED = "junction.error.rate_limited"
PROTOCOL_VIOLATION = "wamp.error.protocol_violation"

# (transport, serializer) pairs: both transports, different serializers.
PAIRS = [("websocket", "json"), ("rawsocket", "msgpack")]
PAIR_IDS = ["ws-json", "rs-msgpack"]

OTHER_ADDRESS = ("127.0.0.2", 0)  # another source address on the loopback interface


@pytest.fixture
async def clients():
    """connect(router, transport, serializer="json", **kw) -> raw client, closed at teardown."""
    opened = []

    async def connect(router, transport, serializer="json", **kw):
        if transport == "websocket":
            host, port = router.ws_addr
            c = await wampraw.RawWebSocketClient.connect(router.ws_url, host, port, serializer, **kw)
        else:
            host, port = router.rs_addr
            c = await wampraw.RawSocketClient.connect(host, port, serializer, **kw)
        opened.append(c)
        return c

    yield connect
    for c in opened:
        await c.close()


def only_abort(msgs, reason):
    """The router sent exactly one ABORT with `reason` before closing; returns its details."""
    assert len(msgs) == 1 and msgs[0][0] == ABORT, f"expected one ABORT, got {msgs!r}"
    assert msgs[0][2] == reason, msgs
    return msgs[0][1]


async def still_serving(router, connect, transport="rawsocket", **kw):
    """A fresh session joins and gets a normal reply to a CALL."""
    c = await connect(router, transport, **kw)
    await c.join()
    reply = await c.request([CALL, c.request_id(), {}, "com.limits.nobody", []])
    assert reply[0] == ERROR and reply[4] == "wamp.error.no_such_procedure", reply
    return c


# --- handshake timeout --------------------------------------------------------

SHORT_HANDSHAKE = "[limits]\nhandshake_timeout_ms = 500\n"


@pytest.mark.parametrize("transport, serializer", PAIRS, ids=PAIR_IDS)
async def test_no_hello_gets_handshake_timeout(start_router, clients, transport, serializer):
    router = start_router(config=SHORT_HANDSHAKE)
    silent = await clients(router, transport, serializer)
    details = only_abort(await silent.recv_until_closed(timeout=10), HANDSHAKE_TIMEOUT)
    assert "500 ms" in details["message"], details
    await still_serving(router, clients, transport)


@pytest.mark.parametrize("transport, serializer", PAIRS, ids=PAIR_IDS)
async def test_unanswered_challenge_gets_handshake_timeout(start_router, clients, transport, serializer):
    config = SHORT_HANDSHAKE + '[[realms]]\nname = "secure"\n[realms.auth.ticket.principals.joe]\nrole = "user"\nticket = "s3cret"\n'
    router = start_router(config=config)
    c = await clients(router, transport, serializer)
    challenge = await c.hello("secure", {"authmethods": ["ticket"], "authid": "joe"})
    assert challenge[0] == CHALLENGE, challenge
    only_abort(await c.recv_until_closed(timeout=10), HANDSHAKE_TIMEOUT)
    ok = await clients(router, transport, serializer)
    assert (await ok.hello("secure", {"authmethods": ["ticket"], "authid": "joe"}))[0] == CHALLENGE
    await ok.send([AUTHENTICATE, "s3cret", {}])
    assert (await ok.recv())[0] == WELCOME


async def test_no_hello_after_goodbye_gets_handshake_timeout(start_router, clients):
    router = start_router(config=SHORT_HANDSHAKE)
    c = await clients(router, "rawsocket")
    await c.join()
    await c.send([GOODBYE, {}, "wamp.close.normal"])
    assert (await c.recv())[0] == GOODBYE
    only_abort(await c.recv_until_closed(timeout=10), HANDSHAKE_TIMEOUT)


@pytest.mark.parametrize("transport", ["websocket", "rawsocket"])
async def test_stalled_opening_handshake_is_closed(start_router, clients, transport):
    router = start_router(config=SHORT_HANDSHAKE)
    host, port = router.ws_addr if transport == "websocket" else router.rs_addr
    reader, writer = await asyncio.open_connection(host, port)
    # half an HTTP upgrade request / half of the 4 RawSocket handshake bytes
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n" if transport == "websocket" else b"\x7f\xf1")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b"", "the router closes the connection"
    writer.close()
    await still_serving(router, clients, transport)


# --- message size per transport -------------------------------------------------

SIZES = "[limits]\nwebsocket_max_message_size = 4096\nrawsocket_max_message_size = 65536\n"


def big_call(c, size):
    return [CALL, c.request_id(), {}, "com.limits.big", ["x" * size]]


async def test_message_size_is_limited_per_transport(start_router, clients):
    router = start_router(config=SIZES)
    ws = await clients(router, "websocket")
    await ws.join()
    reply = await ws.request(big_call(ws, 3000))
    assert reply[0] == ERROR and reply[4] == "wamp.error.no_such_procedure", reply
    await ws.send(big_call(ws, 5000))
    details = only_abort(await ws.recv_until_closed(), PROTOCOL_VIOLATION)
    assert "4096" in details["message"], details
    assert ws.close_code == 1009, "WebSocket close code Message Too Big"

    rs = await clients(router, "rawsocket")
    assert rs.router_max_len_exp == 7, "RawSocket announces 2^(9+7) = 65536 bytes"
    await rs.join()
    reply = await rs.request(big_call(rs, 5000))
    assert reply[0] == ERROR and reply[4] == "wamp.error.no_such_procedure", "5000 bytes are fine on RawSocket"
    await rs.send(big_call(rs, 70000))
    details = only_abort(await rs.recv_until_closed(), PROTOCOL_VIOLATION)
    assert "65536" in details["message"], details
    await still_serving(router, clients, "websocket")
    await still_serving(router, clients, "rawsocket")


# --- sessions per node and per address ------------------------------------------


async def test_max_sessions_per_node(start_router, clients):
    router = start_router(config="[limits]\nmax_sessions = 2\n")
    a = await clients(router, "websocket")
    await a.join()
    b = await clients(router, "rawsocket", "cbor")
    await b.join()
    for transport in ("websocket", "rawsocket"):
        c = await clients(router, transport)
        await c.send([HELLO, "realm1", {"roles": wampraw.CLIENT_ROLES}])
        details = only_abort(await c.recv_until_closed(), TOO_MANY_SESSIONS)
        assert "at most 2 sessions" in details["message"], details
    await a.send([GOODBYE, {}, "wamp.close.normal"])
    assert (await a.recv())[0] == GOODBYE
    await still_serving(router, clients, "websocket")


async def test_max_sessions_per_address(start_router, clients):
    router = start_router(config="[limits]\nmax_sessions_per_ip = 2\n")
    for transport in ("websocket", "rawsocket"):
        await (await clients(router, transport)).join()
    c = await clients(router, "rawsocket")
    await c.send([HELLO, "realm1", {"roles": wampraw.CLIENT_ROLES}])
    details = only_abort(await c.recv_until_closed(), TOO_MANY_SESSIONS)
    assert "per client address" in details["message"], details
    await still_serving(router, clients, "rawsocket", local_addr=OTHER_ADDRESS)
    await still_serving(router, clients, "websocket", local_addr=OTHER_ADDRESS)


# --- calls in flight per session ------------------------------------------------


async def test_max_pending_calls(start_router, clients):
    router = start_router(config="[limits]\nmax_pending_calls = 3\n")
    callee = await clients(router, "rawsocket")
    await callee.join()
    reg = await callee.request([REGISTER, callee.request_id(), {}, "com.limits.slow"])
    assert reg[0] == REGISTERED, reg
    caller = await clients(router, "websocket", "msgpack")
    await caller.join()
    for request in (1, 2, 3):
        await caller.send([CALL, request, {}, "com.limits.slow", [request]])
    invocations = [await callee.recv() for _ in range(3)]
    assert [m[0] for m in invocations] == [INVOCATION] * 3, invocations

    refused = await caller.request([CALL, 4, {}, "com.limits.slow", [4]])
    assert refused[:3] == [ERROR, CALL, 4] and refused[4] == TOO_MANY_PENDING_CALLS, refused
    assert "at most 3 calls" in refused[5][0], refused

    other = await clients(router, "rawsocket", "cbor")
    await other.join()
    await other.send([CALL, 1, {}, "com.limits.slow", ["other"]])
    assert (await callee.recv())[0] == INVOCATION, "another session's calls are not limited by this one's"

    await callee.send([YIELD, invocations[0][1], {}, ["done"]])
    result = await caller.recv()
    assert result[:2] == [RESULT, 1], result
    await caller.send([CALL, 5, {}, "com.limits.slow", [5]])
    fifth = await callee.recv()
    assert fifth[0] == INVOCATION and fifth[4] == [5], "an answered call frees its place"


# --- authentication failures per address ----------------------------------------

AUTH_LIMIT = """
[limits]
auth_failures_per_ip = 3
auth_failure_window_ms = 60000

[[realms]]
name = "realm1"

[[realms]]
name = "secure"
[realms.auth.ticket.principals.joe]
role = "user"
ticket = "s3cret"
"""


async def ticket_login(c, ticket):
    """HELLO + AUTHENTICATE with `ticket`; the router's final answer."""
    reply = await c.hello("secure", {"authmethods": ["ticket"], "authid": "joe"})
    if reply[0] != CHALLENGE:
        return reply
    await c.send([AUTHENTICATE, ticket, {}])
    return await c.recv()


async def test_auth_failures_rate_limit_the_address(start_router, clients):
    router = start_router(config=AUTH_LIMIT)
    bystander = await clients(router, "rawsocket")
    await bystander.join()
    for i in range(3):
        c = await clients(router, "websocket" if i % 2 else "rawsocket")
        reply = await ticket_login(c, "wrong")
        assert reply[0] == ABORT and reply[2] == "wamp.error.authentication_denied", reply
        await c.wait_closed()

    for transport, ticket in (("rawsocket", "s3cret"), ("websocket", "wrong")):
        c = await clients(router, transport)
        reply = await ticket_login(c, ticket)
        assert reply[0] == ABORT and reply[2] == RATE_LIMITED, "refused at HELLO, even with the right ticket"
        assert "retry in" in reply[1]["message"], reply
        await c.wait_closed()
    anonymous = await clients(router, "websocket")
    assert (await anonymous.hello("realm1"))[2] == RATE_LIMITED, "every HELLO from the address is refused"

    other = await clients(router, "websocket", local_addr=OTHER_ADDRESS)
    assert (await ticket_login(other, "s3cret"))[0] == WELCOME, "other addresses still log in"
    reply = await bystander.request([CALL, bystander.request_id(), {}, "com.limits.nobody", []])
    assert reply[4] == "wamp.error.no_such_procedure", "sessions already joined are unaffected"
