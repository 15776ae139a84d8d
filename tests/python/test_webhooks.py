"""Webhooks (`[[webhooks]]`, issue #15): HTTP services taking part in a realm.
A subscriber webhook gets every event of its topic POSTed, in order, retried
when its service fails; a callee webhook serves a procedure, its HTTP answer
becoming the RESULT or the ERROR. The services here are aiohttp servers the
test runs on 127.0.0.1; the other side is Autobahn|Python."""

import asyncio
import json

import pytest
from aiohttp import web
from autobahn.wamp.exception import ApplicationError

from conftest import ALL_COMBOS, connect_session

pytestmark = pytest.mark.timeout(60)


class Service:
    """An HTTP service on a port of its own; `handler(request) -> web.Response`."""

    def __init__(self, handler):
        self.handler = handler
        self.runner = None
        self.port = None

    async def start(self):
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    async def stop(self):
        await self.runner.cleanup()


@pytest.fixture
async def services():
    started = []

    async def start(handler):
        s = await Service(handler).start()
        started.append(s)
        return s

    yield start
    for s in started:
        await s.stop()


async def test_a_subscriber_webhook_gets_each_event_in_order_and_a_failed_post_again(start_router, services):
    received = []
    failed_once = set()
    got = asyncio.Event()
    subscribed = asyncio.Event()

    async def hook(request):
        body = await request.json()
        n = body["args"][0]
        if n == "probe":
            subscribed.set()
            return web.Response(status=204)
        if n == 2 and n not in failed_once:
            failed_once.add(n)
            return web.Response(status=503, text="try again")
        assert request.headers["X-Token"] == "s3cret"
        received.append(body)
        if len(received) == 3:
            got.set()
        return web.Response(status=204)

    svc = await services(hook)
    router = start_router(config=f"""
[[realms]]
name = "realm1"

[[webhooks]]
kind = "subscriber"
realm = "realm1"
topic = "com.hook.events"
url = "{svc.url}"
headers = {{ "X-Token" = "s3cret" }}
backoff_ms = 50
""")
    publisher = await connect_session(router, ALL_COMBOS[0])
    # the webhook subscribes once its session is up: probe until one arrives
    deadline = asyncio.get_running_loop().time() + 20
    while not subscribed.is_set():
        publisher.publish("com.hook.events", "probe")
        try:
            await asyncio.wait_for(subscribed.wait(), 0.2)
        except asyncio.TimeoutError:
            assert asyncio.get_running_loop().time() < deadline, "the webhook never got an event"
    from autobahn.wamp.types import PublishOptions
    for n in (1, 2, 3):
        await publisher.publish("com.hook.events", n, k=f"v{n}", options=PublishOptions(acknowledge=True))
    await asyncio.wait_for(got.wait(), 20)
    assert [b["args"] for b in received] == [[1], [2], [3]], received
    assert received[0]["kwargs"] == {"k": "v1"} and received[0]["topic"] == "com.hook.events"
    assert isinstance(received[0]["publication"], int)
    assert 2 in failed_once, "the 503 was retried"
    publisher.leave()


async def test_a_callee_webhook_serves_calls_and_its_errors_reach_the_caller(start_router, services):
    async def hook(request):
        body = await request.json()
        assert body["procedure"] == "com.hook.calc"
        op = body["args"][0]
        if op == "add":
            return web.json_response({"args": [sum(body["args"][1:])], "kwargs": {"by": "http"}})
        if op == "plain":
            return web.json_response({"total": 7})
        if op == "refuse":
            return web.json_response({"error": "com.example.refused", "args": ["no"]}, status=400)
        if op == "crash":
            return web.Response(status=500, text="boom")
        if op == "slow":
            await asyncio.sleep(5)
        return web.Response(status=200)

    svc = await services(hook)
    router = start_router(config=f"""
[[realms]]
name = "realm1"

[[webhooks]]
kind = "callee"
realm = "realm1"
procedure = "com.hook.calc"
url = "{svc.url}"
timeout_ms = 500
""")
    caller = await connect_session(router, ALL_COMBOS[0])

    async def call(*args):
        deadline = asyncio.get_running_loop().time() + 20
        while True:  # until the webhook registered
            try:
                return await caller.call("com.hook.calc", *args)
            except ApplicationError as e:
                if e.error != "wamp.error.no_such_procedure" or asyncio.get_running_loop().time() > deadline:
                    raise

    res = await call("add", 1, 2, 3)
    assert list(res.results) == [6] and res.kwresults == {"by": "http"}
    assert await call("plain") == {"total": 7}
    assert await call("empty") is None
    with pytest.raises(ApplicationError) as e:
        await call("refuse")
    assert e.value.error == "com.example.refused" and e.value.args == ("no",)
    with pytest.raises(ApplicationError) as e:
        await call("crash")
    assert e.value.error == "wamp.error.runtime_error" and "HTTP 500" in e.value.args[0]
    with pytest.raises(ApplicationError) as e:
        await call("slow")
    assert e.value.error == "wamp.error.runtime_error" and "did not answer" in e.value.args[0]
    caller.leave()


def test_a_webhook_to_https_or_without_its_uri_is_a_config_error(start_router):
    import subprocess
    from conftest import junction_bin
    import tempfile
    import os
    for body, why in (
        ('kind = "subscriber"\nrealm = "realm1"\ntopic = "t"\nurl = "https://x/y"\n', "TLS"),
        ('kind = "callee"\nrealm = "realm1"\nurl = "http://x/y"\n', "procedure"),
        ('kind = "subscriber"\nrealm = "nope"\ntopic = "t"\nurl = "http://x/y"\n', "not a configured realm"),
    ):
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(f'[[realms]]\nname = "realm1"\n[[webhooks]]\n{body}')
        try:
            done = subprocess.run([str(junction_bin()), "--config", f.name, "--ws", "127.0.0.1:0"],
                                  capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(f.name)
        assert done.returncode == 2 and why in done.stderr, (body, done.stderr)


async def test_a_subscriber_webhook_on_one_node_gets_events_published_on_another(services):
    """The webhook is a session of node 2's: events published on node 1 reach it
    through the cluster like any subscriber's."""
    from cluster_helpers import start_cluster

    got = asyncio.Queue()

    async def hook(request):
        await got.put(await request.json())
        return web.Response(status=200)

    svc = await services(hook)
    webhook = f'[[webhooks]]\nkind = "subscriber"\nrealm = "realm1"\ntopic = "com.hook.cross"\nurl = "{svc.url}"\n'
    c = await asyncio.to_thread(start_cluster, "test_webhooks_cross", 2,
                                node_extra=lambda i: webhook if i == 2 else "")
    try:
        publisher = await connect_session(c[1], ALL_COMBOS[0])
        deadline = asyncio.get_running_loop().time() + 20
        n = 0
        while True:
            n += 1
            publisher.publish("com.hook.cross", n)
            try:
                body = await asyncio.wait_for(got.get(), 0.3)
                break
            except asyncio.TimeoutError:
                assert asyncio.get_running_loop().time() < deadline, "no event reached the webhook on node 2"
        assert body["topic"] == "com.hook.cross" and body["args"][0] >= 1, body
        publisher.leave()
    finally:
        await asyncio.to_thread(c.stop)


async def test_a_callee_webhook_keeps_to_its_concurrency_and_a_full_subscriber_queue_drops_and_counts(
        start_router, services):
    """At most `concurrency` invocations are POSTed at once; events beyond a
    subscriber webhook's `queue` are dropped and counted in the metrics."""
    import urllib.request

    in_flight, peak = 0, 0
    release = asyncio.Event()
    blocked = asyncio.Event()

    async def calc(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 2:
            blocked.set()
        await release.wait()
        in_flight -= 1
        return web.json_response({"args": [(await request.json())["args"][0]]})

    stuck = asyncio.Event()
    posted = []

    async def events(request):
        posted.append((await request.json())["args"][0])
        await stuck.wait()
        return web.Response(status=204)

    callee_svc = await services(calc)
    events_svc = await services(events)
    router = start_router(config=f"""
[admin]
listen = "127.0.0.1:0"
metrics_public = true

[[realms]]
name = "realm1"

[[webhooks]]
name = "calc"
kind = "callee"
realm = "realm1"
procedure = "com.hook.limited"
url = "{callee_svc.url}"
concurrency = 2

[[webhooks]]
name = "slow-events"
kind = "subscriber"
realm = "realm1"
topic = "com.hook.flood"
url = "{events_svc.url}"
queue = 1
timeout_ms = 30000
""")
    s = await connect_session(router, ALL_COMBOS[0])

    async def call(n):
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                return await s.call("com.hook.limited", n)
            except ApplicationError as e:
                if e.error != "wamp.error.no_such_procedure" or asyncio.get_running_loop().time() > deadline:
                    raise

    calls = [asyncio.ensure_future(call(n)) for n in range(5)]
    await asyncio.wait_for(blocked.wait(), 20)
    assert in_flight == 2, "two requests in flight"
    release.set()
    assert sorted(await asyncio.gather(*calls)) == list(range(5))
    assert peak == 2, f"at most 2 requests at once, saw {peak}"

    from autobahn.wamp.types import PublishOptions
    deadline = asyncio.get_running_loop().time() + 20
    while not posted:  # the first event is POSTed and its request hangs
        await s.publish("com.hook.flood", "probe", options=PublishOptions(acknowledge=True))
        await asyncio.sleep(0.05)
        assert asyncio.get_running_loop().time() < deadline, "the subscriber webhook got nothing"
    for n in range(10):
        await s.publish("com.hook.flood", n, options=PublishOptions(acknowledge=True))

    def dropped():
        with urllib.request.urlopen(router.listeners["admin"] + "/metrics", timeout=5) as r:
            text = r.read().decode()
        for line in text.splitlines():
            if line.startswith("junction_webhook_events_total{") and 'outcome="dropped"' in line \
                    and 'webhook="slow-events"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    deadline = asyncio.get_running_loop().time() + 20
    while dropped() < 8:  # 1 in the request, 1 queued, the rest dropped
        assert asyncio.get_running_loop().time() < deadline, f"dropped {dropped()}"
        await asyncio.sleep(0.05)
    stuck.set()
    s.leave()
