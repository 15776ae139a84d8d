"""Attacks on the handshakes, tried against a running router:

- running more password guesses than the failed-authentication limit by opening
  many handshakes at once (each counts from its HELLO until it succeeds);
- probing which authids exist (an unknown authid is answered like a wrong secret
  unless `disclose_unknown_authids` says otherwise), with Autobahn|Python;
- opening a WebSocket from a page of another site (the `Origin` allow-list)."""

import asyncio
import base64
import os

import pytest

from conftest import ALL_COMBOS, JoinFailed, TestSession, connect_session, ticket_session
from test_limits import AUTH_LIMIT, AUTHENTICATE, CHALLENGE, RATE_LIMITED, clients, ticket_login  # noqa: F401
from wampraw import ABORT, WELCOME

pytestmark = pytest.mark.timeout(40)


async def test_concurrent_handshakes_count_against_the_failure_limit(start_router, clients):  # noqa: F811
    router = start_router(config=AUTH_LIMIT)  # 3 failures per address and minute
    guesses = []
    for i in range(3):
        c = await clients(router, "websocket" if i % 2 else "rawsocket")
        reply = await c.hello("secure", {"authmethods": ["ticket"], "authid": "joe"})
        assert reply[0] == CHALLENGE, reply
        guesses.append(c)
    # a fourth handshake while three guesses are open is refused, even with the right ticket
    fourth = await clients(router, "rawsocket")
    reply = await ticket_login(fourth, "s3cret")
    assert reply[0] == ABORT and reply[2] == RATE_LIMITED, reply
    # the open guesses fail: the address stays refused for the window
    for c in guesses:
        await c.send([AUTHENTICATE, "wrong", {}])
        reply = await c.recv()
        assert reply[0] == ABORT and reply[2] == "wamp.error.authentication_denied", reply
    later = await clients(router, "websocket")
    reply = await ticket_login(later, "s3cret")
    assert reply[0] == ABORT and reply[2] == RATE_LIMITED and "retry in" in reply[1]["message"], reply


async def test_a_successful_handshake_frees_its_place(start_router, clients):  # noqa: F811
    router = start_router(config=AUTH_LIMIT)
    open_ = []
    for _ in range(3):
        c = await clients(router, "rawsocket")
        assert (await c.hello("secure", {"authmethods": ["ticket"], "authid": "joe"}))[0] == CHALLENGE
        open_.append(c)
    await open_[0].send([AUTHENTICATE, "s3cret", {}])
    assert (await open_[0].recv())[0] == WELCOME
    c = await clients(router, "websocket")
    assert (await ticket_login(c, "s3cret"))[0] == WELCOME


SECURE = """
[[realms]]
name = "secure"
[realms.auth.ticket.principals.joe]
role = "user"
ticket = "s3cret"
[realms.auth.wampcra.principals.peter]
role = "user"
secret = "cra-secret"

[[realms]]
name = "open-book"
[realms.auth]
disclose_unknown_authids = true
[realms.auth.ticket.principals.joe]
role = "user"
ticket = "s3cret"
"""


def cra_client(authid, secret, challenges):
    from autobahn.wamp import auth

    class S(TestSession):
        __test__ = False

        def onConnect(self):
            self.join(self.config.realm, ["wampcra"], authid)

        def onChallenge(self, challenge):
            challenges.append((challenge.method, sorted(challenge.extra)))
            return auth.compute_wcs(secret, challenge.extra["challenge"])

    return S


async def refusal(router, combo, realm, cls):
    with pytest.raises(JoinFailed) as e:
        await connect_session(router, combo, realm=realm, session_cls=cls)
    return e.value.reason, e.value.details.message


async def test_unknown_authids_are_answered_like_wrong_secrets(start_router, combo):
    router = start_router(config=SECURE)
    known, unknown = [], []
    wrong = await refusal(router, combo, "secure", ticket_session("joe", "guess", known))
    probe = await refusal(router, combo, "secure", ticket_session("nobody", "guess", unknown))
    assert probe == wrong and probe[0] == "wamp.error.authentication_denied", (probe, wrong)
    assert unknown == known == [("ticket", {})], "a CHALLENGE either way"
    known, unknown = [], []
    wrong = await refusal(router, combo, "secure", cra_client("peter", "guess", known))
    probe = await refusal(router, combo, "secure", cra_client("nobody", "guess", unknown))
    assert probe == wrong and probe[0] == "wamp.error.authentication_denied", (probe, wrong)
    assert unknown == known, (unknown, known)
    # the operator can choose to tell
    reason, _ = await refusal(router, combo, "open-book", ticket_session("nobody", "guess", []))
    assert reason == "wamp.error.no_such_principal"


# --------------------------------------------------------------------------
# WebSocket Origin
# --------------------------------------------------------------------------


async def upgrade(router, origin):
    """Sends a WebSocket opening handshake with `origin`; the HTTP status code."""
    h, port = router.ws_addr
    reader, writer = await asyncio.open_connection(h, port)
    key = base64.b64encode(os.urandom(16)).decode()
    path = "/" + router.ws_url.split("/", 3)[3]
    lines = [f"GET {path} HTTP/1.1", f"Host: {h}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: wamp.2.json"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return int(status.split()[1])


async def test_websocket_origin_allow_list(start_router):
    router = start_router(config='[websocket]\nallowed_origins = ["https://app.example.com", "https://*.example.org"]\n')
    assert await upgrade(router, None) == 101, "no Origin: not a browser page"
    assert await upgrade(router, "http://127.0.0.1:9999") == 101, "a page of the router's own host"
    assert await upgrade(router, "https://app.example.com") == 101
    assert await upgrade(router, "https://shop.example.org") == 101
    assert await upgrade(router, "https://evil.example") == 403
    assert await upgrade(router, "https://app.example.com.evil.example") == 403


async def test_foreign_origins_are_refused_by_default(start_router):
    router = start_router()
    assert await upgrade(router, "https://evil.example") == 403
    assert await upgrade(router, None) == 101
    s = await connect_session(router, ALL_COMBOS[0])  # Autobahn|Python sends no Origin
    s.leave()
