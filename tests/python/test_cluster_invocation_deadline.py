# An INVOCATION of a call kept on another node must be on its way to the callee by
# the time that node may answer the call on its own (the call's timeout here, the
# fence otherwise). One still in the callee's outbound queue then — its node was
# paused between queueing and writing it, or, as here, a backlog sat in front of it
# while the callee read nothing — is dropped unsent, so the callee never runs a call
# whose caller was already told it failed; the callee's session goes on.
#
# Two real nodes: a raw RawSocket callee on node 2 that stops reading while events
# for it pile up, an Autobahn|Python caller on node 1.
#
# Node logs: target/test-logs/cluster/test_cluster_invocation_deadline/node<N>.stderr.log.
import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, PublishOptions

import wampraw
from cluster_helpers import module_cluster
from conftest import ALL_COMBOS, Wamp
from raw_clients import raw_register, raw_subscribe

pytestmark = pytest.mark.timeout(60)

CALL_TIMEOUT_MS = 500
EVENT = "x" * 65536
EVENTS = 480  # 30 MiB: more than the loopback socket buffers hold, less than the outbox bound


@pytest.fixture(scope="module")
def cluster():
    yield from module_cluster("test_cluster_invocation_deadline", n=2)


async def test_an_invocation_still_queued_after_its_calls_timeout_never_reaches_the_callee(cluster, request):
    rawsocket_msgpack = next(c for c in ALL_COMBOS if c.transport == "rawsocket" and c.serializer == "msgpack")
    w = Wamp(cluster[1], rawsocket_msgpack)
    try:
        proc, topic = f"com.deadline.{request.node.name}", f"com.deadline.events.{request.node.name}"
        callee = await w.raw(router=cluster[2])
        await callee.join()
        await raw_register(callee, proc)
        await raw_subscribe(callee, topic)
        await cluster.sync()
        publisher = await w.session(router=cluster[2])
        caller = await w.session(router=cluster[1])

        # the callee stops reading; a backlog of events fills the socket buffers and
        # then its outbound queue
        callee.writer.transport.pause_reading()
        for i in range(EVENTS):
            await publisher.publish(topic, i, EVENT, options=PublishOptions(acknowledge=True))

        # calls behind the backlog: each times out at the caller's node
        calls = [caller.call(proc, n, options=CallOptions(timeout=CALL_TIMEOUT_MS)) for n in range(5)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 20)
        assert all(isinstance(o, ApplicationError) and o.error == "wamp.error.timeout" for o in outcomes), outcomes

        # the callee reads again: the backlog arrives, the stale invocations do not
        await publisher.publish(topic, "end", options=PublishOptions(acknowledge=True))
        callee.writer.transport.resume_reading()
        got = []
        while True:
            msg = await callee.recv(timeout=20)
            got.append(msg)
            if msg[0] == wampraw.EVENT and len(msg) > 4 and msg[4] == ["end"]:
                break
        events = [m for m in got if m[0] == wampraw.EVENT]
        invocations = [m for m in got if m[0] == wampraw.INVOCATION]
        assert len(events) == EVENTS + 1, f"{len(events)} events"
        assert invocations == [], f"the callee got {len(invocations)} invocations whose callers had timed out"

        # the callee still serves
        fresh = asyncio.ensure_future(caller.call(proc, "fresh", options=CallOptions(timeout=5000)))
        inv = await callee.recv(timeout=10)
        while inv[0] != wampraw.INVOCATION:
            inv = await callee.recv(timeout=10)
        assert inv[4] == ["fresh"], inv
        await callee.send([wampraw.YIELD, inv[1], {}, ["served"]])
        assert await asyncio.wait_for(fresh, 10) == "served"
    finally:
        await w.close()
