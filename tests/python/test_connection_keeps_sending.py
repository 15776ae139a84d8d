"""A connection keeps sending while one of its requests waits: a session whose CALL
waits for a slow dynamic authorizer keeps receiving a stream of events, in order,
and is not evicted as a slow consumer (its outbound queue holds 32 frames, the
stream is longer); the CALL is answered once the authorizer decides."""

import asyncio

import pytest
from autobahn.wamp.types import PublishOptions

from autobahn_helpers import subscribe_log
from conftest import ALL_COMBOS, connect_session, ticket_session

pytestmark = pytest.mark.timeout(40)

CONFIG = """
[limits]
outbox_frames = 32

[[realms]]
name = "app"
[realms.auth.ticket.principals.svc]
role = "service"
ticket = "s"
[realms.auth.ticket.principals.dev]
role = "device"
ticket = "d"

[[realms.roles]]
name = "service"
[[realms.roles.permissions]]
uri = ""
match = "prefix"
call = true
register = true
publish = true
subscribe = true

[[realms.roles]]
name = "device"
authorizer = "com.app.authorize"
authorizer_role = "service"
"""

EVENTS = 200


async def test_events_flow_while_a_call_waits_for_the_authorizer(start_router):
    router = start_router(config=CONFIG)
    svc = await connect_session(router, ALL_COMBOS[0], realm="app", session_cls=ticket_session("svc", "s"))
    release = asyncio.Event()

    async def authorize(session, uri, action, options):
        if uri == "com.app.slow":
            await release.wait()  # decides only once the events were delivered
        return True

    await svc.register(authorize, "com.app.authorize")
    await svc.register(lambda: "done", "com.app.slow")
    dev = await connect_session(router, ALL_COMBOS[4], realm="app",
                                session_cls=ticket_session("dev", "d"))
    log = await subscribe_log(dev, "com.app.ticks")
    call = asyncio.ensure_future(dev.call("com.app.slow"))
    for i in range(EVENTS):
        await svc.publish("com.app.ticks", i, options=PublishOptions(acknowledge=True))
    received = [(await log.get(timeout=10))[0][0] for _ in range(EVENTS)]
    assert received == list(range(EVENTS)), "every event, in order, while the CALL waits"
    assert not call.done(), "the CALL is still waiting for the authorizer"
    release.set()
    assert await asyncio.wait_for(call, 10) == "done"
    assert not dev.left.done(), "not evicted"
