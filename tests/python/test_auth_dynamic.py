"""Dynamic authentication interop (Crossbar.io style): an Autobahn|Python client
registers `com.example.authenticate` in the realm named by `authenticator_realm`;
the router calls it for ticket (after AUTHENTICATE) and WAMP-CRA (at HELLO, for the
secret) and admits, refuses or re-labels the joining client by its answer. Over
every transport/serializer pair."""

import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError

from conftest import ALL_COMBOS, JoinFailed, connect_session
from test_auth import session_for

pytestmark = pytest.mark.timeout(30)

CONFIG = """
[[realms]]
name = "auth"

[[realms]]
name = "secure"
[realms.auth]
authenticator_realm = "auth"
authenticator_role = "anonymous"  # the test's authenticator joins "auth" anonymously
[realms.auth.ticket]
authenticator = "com.example.authenticate"
[realms.auth.wampcra]
authenticator = "com.example.authenticate"
"""

CRA_SECRET = "cra-secret-of-peter"


def authenticate(calls):
    def handler(realm, authid, details):
        calls.append((realm, authid, details))
        if details["authmethod"] == "wampcra":
            if authid != "peter":
                raise ApplicationError("com.example.no_such_user", "who is that?")
            return {"secret": CRA_SECRET, "role": "operator"}
        if authid == "renamed":
            return {"role": "user", "authid": "someone-else", "extra": {"tier": "gold"}}
        if details.get("ticket") == f"pw-{authid}":
            return "user"
        raise ApplicationError("com.example.invalid_ticket", "wrong ticket")

    return handler


@pytest.fixture
async def dyn(start_router):
    router = start_router(config=CONFIG)
    calls = []
    authenticator = await connect_session(router, ALL_COMBOS[0], realm="auth")
    await authenticator.joined
    await authenticator.register(authenticate(calls), "com.example.authenticate")
    yield router, calls
    authenticator.leave()


async def join(router, combo, cls):
    return await connect_session(router, combo, realm="secure", session_cls=cls)


async def test_ticket_accepted_by_the_authenticator(dyn, combo):
    router, calls = dyn
    s = await join(router, combo, session_for("joe", ["ticket"], "pw-joe"))
    details = await s.joined
    assert (details.authid, details.authrole, details.authmethod) == ("joe", "user", "ticket")
    assert details.authprovider == "dynamic"
    realm, authid, info = calls[-1]
    assert (realm, authid) == ("secure", "joe")
    assert info["ticket"] == "pw-joe" and info["authmethod"] == "ticket"
    assert info["session"] == s.session_id
    assert info["transport"]["type"] in ("websocket", "rawsocket")
    # the joined session works
    await s.register(lambda: "pong", "com.example.ping")
    assert await s.call("com.example.ping") == "pong"
    s.leave()


async def test_authenticator_error_is_the_abort_reason(dyn, combo):
    router, _ = dyn
    with pytest.raises(JoinFailed) as e:
        s = await join(router, combo, session_for("joe", ["ticket"], "wrong"))
        await s.joined
    assert e.value.reason == "com.example.invalid_ticket"
    assert e.value.details.message == "wrong ticket"


async def test_authenticator_assigns_authid_and_extra(dyn, combo):
    router, _ = dyn
    s = await join(router, combo, session_for("renamed", ["ticket"], "anything"))
    details = await s.joined
    assert (details.authid, details.authrole) == ("someone-else", "user")
    assert details.authextra == {"tier": "gold"}
    s.leave()


async def test_wampcra_secret_from_the_authenticator(dyn, combo):
    router, calls = dyn
    s = await join(router, combo, session_for("peter", ["wampcra"], CRA_SECRET))
    details = await s.joined
    assert (details.authid, details.authrole, details.authmethod) == ("peter", "operator", "wampcra")
    # called at HELLO, without a ticket
    assert calls[-1][2]["authmethod"] == "wampcra" and "ticket" not in calls[-1][2]
    s.leave()


async def test_wampcra_wrong_secret(dyn, combo):
    router, _ = dyn
    with pytest.raises(JoinFailed) as e:
        s = await join(router, combo, session_for("peter", ["wampcra"], "not-the-secret"))
        await s.joined
    assert e.value.reason == "wamp.error.authentication_denied"


async def test_wampcra_unknown_authid_gets_the_authenticators_error(dyn, combo):
    router, _ = dyn
    with pytest.raises(JoinFailed) as e:
        s = await join(router, combo, session_for("mallory", ["wampcra"], "x"))
        await s.joined
    assert e.value.reason == "com.example.no_such_user"


async def test_no_authenticator_registered(start_router):
    router = start_router(config=CONFIG)
    with pytest.raises(JoinFailed) as e:
        s = await join(router, ALL_COMBOS[0], session_for("joe", ["ticket"], "pw-joe"))
        await s.joined
    assert e.value.reason == "wamp.error.authentication_failed"
    assert "unavailable" in (e.value.details.message or "")


async def test_authenticator_leaving_mid_authentication(start_router):
    router = start_router(config=CONFIG)
    authenticator = await connect_session(router, ALL_COMBOS[0], realm="auth")
    await authenticator.joined
    called = asyncio.get_running_loop().create_future()

    async def stall(realm, authid, details):
        called.set_result(True)
        await asyncio.Future()  # never answers

    await authenticator.register(stall, "com.example.authenticate")
    joining = asyncio.ensure_future(join(router, ALL_COMBOS[4], session_for("joe", ["ticket"], "pw-joe")))
    await asyncio.wait_for(called, 10)
    authenticator.leave()
    with pytest.raises(JoinFailed) as e:
        await asyncio.wait_for(joining, 10)
    assert e.value.reason == "wamp.error.authentication_failed"


@pytest.fixture
def cluster(request):
    from cluster_helpers import start_cluster

    c = start_cluster(f"test_auth_dynamic_{request.node.name}", n=2, extra=CONFIG)
    yield c
    crashed = c.stop()
    assert not crashed, crashed


async def test_authenticator_on_another_node(cluster):
    calls = []
    authenticator = await connect_session(cluster[1], ALL_COMBOS[0], realm="auth")
    await authenticator.joined
    await authenticator.register(authenticate(calls), "com.example.authenticate")
    await cluster.sync()
    s = await connect_session(cluster[2], ALL_COMBOS[4], realm="secure", session_cls=session_for("joe", ["ticket"], "pw-joe"))
    details = await s.joined
    assert (details.authid, details.authrole, details.authprovider) == ("joe", "user", "dynamic")
    assert calls[-1][2]["ticket"] == "pw-joe"
    with pytest.raises(JoinFailed) as e:
        await connect_session(cluster[2], ALL_COMBOS[1], realm="secure", session_cls=session_for("joe", ["ticket"], "no"))
    assert e.value.reason == "com.example.invalid_ticket"
    s.leave()
    authenticator.leave()
