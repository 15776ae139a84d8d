"""The web console in headless Chromium (Debian's `chromium`, driven by npm
`playwright-core`, both installed by test.sh; tests/browser/console.js drives it)
against a real 3-node Junction cluster.

The console is opened on node 2's admin port without query parameters: it must
find node 2's own WebSocket listener through /api/console-config (derived from
the request's Host, also checked here directly). Callers on every node call a
procedure shared by callees on nodes 1 and 3; the page must then show every node's
message and call rate series growing, a p99 call latency for every node, the links
between every pair of nodes up in both directions, and the procedure's callees
with their node ids. Killing an Autobahn session on node 3 with its row's button
(and the confirmation dialog) must end that session: the test's own client sees
its session closed. The screenshot the driver takes goes to
target/test-logs/console/console.png (CONSOLE_SCREENSHOT=PATH to put it elsewhere).
With CONSOLE_SCREENSHOT_SAMPLES=N the driver waits for N samples (1.5 s each)
before the screenshot while the test keeps calls and events going (how
docs/console.png is made: CONSOLE_SCREENSHOT=docs/console.png
CONSOLE_SCREENSHOT_SAMPLES=40). Without Chromium or the npm packages the test is
skipped and says why."""

import asyncio
import json
import math
import os
import urllib.request

import pytest
from autobahn.wamp.types import PublishOptions, RegisterOptions

from cluster_helpers import start_cluster
from conftest import ALL_COMBOS, REPO_ROOT, connect_session
from test_browser import BROWSER_DIR, CHROMIUM, skip_reason

SAMPLES = int(os.environ.get("CONSOLE_SCREENSHOT_SAMPLES") or 1)

pytestmark = pytest.mark.timeout(150 + 2 * SAMPLES)

ADMIN_TOKEN = "console-admin-token-3f81c2a7"
PROCEDURE = "com.console.add"
TOPIC = "com.console.tick"
STEP = 40  # seconds the test waits for one line of the driver

EXTRA = """
[admin]
listen = "127.0.0.1:0"
realm = "realm1"
token_file = "{token_file}"

[[realms]]
name = "realm1"
[realms.auth.anonymous]
role = "admin"
"""


def console_config(admin_url, host):
    req = urllib.request.Request(f"{admin_url}/api/console-config",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Host": host})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


async def line(proc, stage, timeout=STEP):
    raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not raw:
        err = await proc.stderr.read()
        raise AssertionError(f"the driver ended before {stage}: {err.decode(errors='replace')}")
    doc = json.loads(raw)
    assert doc.get("stage") == stage, doc
    return doc


async def load(callers, stop):
    """Calls and events at a varying rate until `stop` is set (the screenshot's picture)."""
    i = 0
    while not stop.is_set():
        burst = 2 + round(4 * (1 + math.sin(i / 6)))
        for n, caller in enumerate(callers):
            for _ in range(burst + 2 * n):
                await caller.call(PROCEDURE, i, 1)
            await caller.publish(TOPIC, i, options=PublishOptions(acknowledge=True))
        i += 1
        await asyncio.sleep(0.1)  # pacing, not synchronisation


async def test_console_charts_links_callees_and_kill(request, tmp_path):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    cluster = start_cluster(f"test_console_{request.node.name}", n=3, extra=EXTRA.format(token_file=token_file))
    proc = None
    try:
        # /api/console-config names the serving node's own listener, as the browser reaches it
        admin2 = cluster[2].listeners["admin"]
        admin_port = admin2.rsplit(":", 1)[1]
        ws_port = cluster[2].ws_url.split(":")[2].split("/")[0]
        assert console_config(admin2, f"127.0.0.1:{admin_port}")["url"] == cluster[2].ws_url
        assert console_config(admin2, f"localhost:{admin_port}")["url"] == f"ws://localhost:{ws_port}/ws"

        combo = ALL_COMBOS[0]
        callees = [await connect_session(cluster[i], combo) for i in (1, 3)]
        for c in callees:
            await c.register(lambda a, b: a + b, PROCEDURE, options=RegisterOptions(invoke="roundrobin"))
            await c.subscribe(lambda i: None, TOPIC)
        callers = [await connect_session(cluster[i], combo) for i in (1, 2, 3)]
        victim = await connect_session(cluster[3], combo)
        victim_id = victim.session_id  # Autobahn forgets it once the session is closed
        await cluster.sync()

        screenshot = os.environ.get("CONSOLE_SCREENSHOT") or str(REPO_ROOT / "target" / "test-logs" / "console" / "console.png")
        os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
        env = dict(os.environ, NODE_PATH=str(BROWSER_DIR / "node_modules"), CHROMIUM=CHROMIUM, ADMIN_TOKEN=ADMIN_TOKEN)
        proc = await asyncio.create_subprocess_exec(
            "node", str(REPO_ROOT / "tests" / "browser" / "console.js"), f"{admin2}/console", "3", PROCEDURE,
            str(victim_id), screenshot, str(SAMPLES),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)

        ready = await line(proc, "ready")
        assert ready["state"] == "joined realm1 as admin" and ready["node"] == "2", ready
        assert ready["url"] == cluster[2].ws_url, ready  # found through /api/console-config

        for caller in callers:
            for i in range(10):
                assert await caller.call(PROCEDURE, i, 1) == i + 1
            for i in range(3):
                await caller.publish(TOPIC, i, options=PublishOptions(acknowledge=True))
        stop = asyncio.Event()
        loading = asyncio.create_task(load(callers, stop)) if SAMPLES > 1 else None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()

        shown = await line(proc, "shown", STEP + 2 * SAMPLES)
        if loading:
            stop.set()
            await loading
        for n in ("1", "2", "3"):
            calls = shown["charts"]["chart-calls"][f"{n}:calls"]
            assert calls["points"] > ready["charts"]["chart-calls"][f"{n}:calls"]["points"], shown["charts"]
            assert calls["max"] > 0, shown["charts"]
            assert shown["charts"]["chart-messages"][f"{n}:messages"]["max"] > 0, shown["charts"]
        assert any(s["max"] > 0 for s in shown["charts"]["chart-events"].values()), shown["charts"]
        assert all(s["points"] > 0 for s in shown["charts"]["chart-latency"].values() if s is not None), shown["charts"]
        stats = {row[0]: row for row in shown["nodeStats"]}
        assert set(stats) == {"1", "2", "3"}, shown["nodeStats"]
        for n, row in stats.items():
            assert row[1] == "yes" and int(row[8]) >= 10, row  # answered; calls completed
            p50, p90, p99 = (float(v) for v in row[9:12])
            assert 0 < p50 <= p90 <= p99, row
        links = {(row[0], row[1]): row for row in shown["links"]}
        for a in ("1", "2", "3"):
            for b in ("1", "2", "3"):
                if a != b:
                    assert links[(a, b)][3] == "up", shown["links"]
        reg = next(row for row in shown["registrations"] if row[1] == PROCEDURE)
        assert reg[4] == "2", reg
        callee_rows = shown["callees"][reg[0]]
        assert {(r[0], r[1]) for r in callee_rows} == {(str(callees[0].session_id), "1"),
                                                      (str(callees[1].session_id), "3")}, callee_rows
        assert os.path.getsize(screenshot) > 10000

        killed = await line(proc, "killed")
        assert str(victim_id) in killed["dialogText"] and "node 3" in killed["dialogText"], killed
        assert killed["killResult"] == f"session {victim_id} killed", killed
        details = await asyncio.wait_for(victim.left, 10)
        assert details.reason == "wamp.close.killed", details
        await asyncio.wait_for(proc.wait(), 20)
        assert proc.returncode == 0, (await proc.stderr.read()).decode(errors="replace")
        for s in [*callees, *callers]:
            s.leave()
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        cluster.stop()
