"""Keepalive (`limits.keepalive_interval_ms`): the router pings WebSocket connections
that went quiet and drops a peer that answers nothing, so a dead callee's
registrations go and a `first` standby takes over; live clients stay connected
however long they idle (Autobahn|Python over WebSocket answers pings by itself; over
RawSocket the router sends none, as Autobahn|Python's asyncio RawSocket fails on them,
and TCP keepalive probes find dead peers)."""

import asyncio
import base64
import json
import os

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

from conftest import ALL_COMBOS, connect_session

pytestmark = pytest.mark.timeout(30)

INTERVAL_MS = 200
CONFIG = f"[limits]\nkeepalive_interval_ms = {INTERVAL_MS}\n"
PROC = "com.keepalive.serve"


async def silent_callee(router):
    """A WebSocket/JSON client that joins, registers PROC (`first`), then reads and
    answers nothing, not even the router's pings: a hung or half-open peer."""
    host, port = router.ws_addr
    path = "/" + router.ws_url.split("/", 3)[3]
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n").encode())
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")

    def send(msg):  # one masked text frame (short messages only)
        data = json.dumps(msg).encode()
        mask = os.urandom(4)
        writer.write(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    async def frame():
        head = await reader.readexactly(2)
        n = head[1] & 0x7F
        if n >= 126:
            n = int.from_bytes(await reader.readexactly(2 if n == 126 else 8), "big")
        return json.loads(await reader.readexactly(n))

    send([1, "realm1", {"roles": {"callee": {}}}])
    assert (await frame())[0] == 2, "WELCOME"
    send([64, 1, {"invoke": "first"}, PROC])
    assert (await frame())[0] == 65, "REGISTERED"
    return writer


async def test_a_silent_callee_is_dropped_and_the_standby_takes_over(start_router):
    router = start_router(config=CONFIG)
    silent = await silent_callee(router)
    standby = await connect_session(router, ALL_COMBOS[3])
    await standby.register(lambda: "standby", PROC, options=RegisterOptions(invoke="first"))
    caller = await connect_session(router, ALL_COMBOS[0])
    # while the silent callee is registered first, calls go to it and get no answer;
    # once it is dropped (2 to 3 intervals), they go to the standby
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    answer = None
    while answer is None and loop.time() < deadline:
        try:
            answer = await asyncio.wait_for(caller.call(PROC), INTERVAL_MS / 1000)
        except asyncio.TimeoutError:
            pass  # the silent callee holds it
        except ApplicationError as e:
            assert e.error == "wamp.error.canceled", e  # the silent callee left mid-call
    assert answer == "standby", "the silent callee was not dropped"
    callees = await caller.call("wamp.registration.list_callees",
                                await caller.call("wamp.registration.lookup", PROC))
    assert callees == [standby.session_id], callees
    silent.close()


@pytest.mark.parametrize("pair", [ALL_COMBOS[1], ALL_COMBOS[4]], ids=["ws-msgpack", "rs-msgpack"])
async def test_idle_clients_that_answer_pings_stay_connected(start_router, pair):
    router = start_router(config=CONFIG)
    idle = await connect_session(router, pair)
    await idle.register(lambda: "still here", PROC)
    await asyncio.sleep(6 * INTERVAL_MS / 1000)  # the idle time under test: six intervals
    assert not idle.left.done(), "an idle client that answers pings was dropped"
    caller = await connect_session(router, ALL_COMBOS[0])
    assert await caller.call(PROC) == "still here"
