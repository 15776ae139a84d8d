"""WAMP in a real browser: headless Chromium (Debian's `chromium`, driven by npm
`playwright-core`, both installed by test.sh) against a real 2-node Junction
cluster. A plain Autobahn|JS page joins node 2, calls a procedure served by an
Autobahn|Python callee on node 1 and receives events published on node 1; the web
console served on node 2's admin port joins as a WAMP client and shows both
nodes with their roles, the leader, the sessions of each node, the callee's
registration and the page's subscription, and updates when a session joins; opened
without query parameters it finds the router through /api/console-config. The
console logs in with the admin token typed into its form (never in its URL); a
wrong token is refused. Without
Chromium or the npm packages the test is skipped and says why (it is never
passed); test.sh runs it as its own suite."""

import asyncio
import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from autobahn.wamp.types import PublishOptions

from cluster_helpers import start_cluster
from conftest import ALL_COMBOS, REPO_ROOT, connect_session

pytestmark = pytest.mark.timeout(90)

BROWSER_DIR = REPO_ROOT / "target" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

ADMIN_TOKEN = "browser-admin-token-6e2b90d4"

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


def skip_reason():
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (test.sh installs Debian's chromium when run as root)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").exists():
        return "npm playwright-core is not installed in target/browser (test.sh installs it)"
    if shutil.which("node") is None:
        return "node is not on PATH"
    return None


@pytest.fixture
def static_site(tmp_path):
    """Serves the test page and Autobahn|JS's browser build from a local HTTP server."""
    shutil.copy(REPO_ROOT / "tests" / "browser" / "page.html", tmp_path / "page.html")
    shutil.copy(BROWSER_DIR / "node_modules" / "autobahn-browser" / "autobahn.min.js", tmp_path / "autobahn.min.js")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def test_autobahn_js_page_and_console_in_chromium(request, static_site, tmp_path):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    cluster = start_cluster(f"test_browser_{request.node.name}", n=2, extra=EXTRA.format(token_file=token_file))
    try:
        callee = await connect_session(cluster[1], ALL_COMBOS[4])
        await callee.register(lambda a, b: a + b, "com.browser.add")
        await cluster.sync()
        ws2 = cluster[2].ws_url
        page_url = f"{static_site}/page.html?url={ws2}&console_ws={ws2}"
        console_url = f"{cluster[2].listeners['admin']}/console?url={ws2}&realm=realm1"
        assert ADMIN_TOKEN not in console_url
        env = dict(os.environ, NODE_PATH=str(BROWSER_DIR / "node_modules"), CHROMIUM=CHROMIUM,
                   ADMIN_TOKEN=ADMIN_TOKEN)
        proc = await asyncio.create_subprocess_exec(
            "node", str(REPO_ROOT / "tests" / "browser" / "drive.js"), page_url, console_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        first = await asyncio.wait_for(proc.stdout.readline(), 45)
        assert json.loads(first or b"{}").get("ready"), (first, await proc.stderr.read())
        for i in range(3):
            await callee.publish("com.browser.tick", i, options=PublishOptions(acknowledge=True))
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode(errors="replace")
        result = json.loads(out.decode().strip().splitlines()[-1])
        page = result["page"]
        assert page["joined"] and page["error"] is None, page
        assert page["sum"] == 5, page
        assert page["events"] == [0, 1, 2], page
        assert result["consoleStatus"] == 401, result  # without the token /console is only the login form
        assert result["consoleLogin"] == {"loginShown": False, "error": "", "tokenInUrl": False}, result
        assert result["bareWrongToken"]["loginShown"] and "wrong" in result["bareWrongToken"]["error"], result
        assert not result["bareLogin"]["loginShown"] and not result["bareLogin"]["tokenInUrl"], result
        console = result["console"]
        assert console["state"] == "joined realm1 as admin" and console["node"] == "2", console
        members = {row[0]: row for row in console["members"]}
        assert set(members) == {"1", "2"}, console
        assert sorted(row[2] for row in members.values()) == ["voter", "voter"], console
        leader = [n for n, row in members.items() if row[3] == "leader"]
        assert len(leader) == 1 and console["leader"].split(" ")[0] == leader[0], console
        assert all(row[4] == "yes" for row in members.values()), console
        assert members["1"][5] == "up", console  # node 2's link to node 1
        regs = {row[1]: row for row in console["registrations"]}
        assert regs["com.browser.add"][4] == "1", console  # one callee, on node 1
        assert "com.browser.tick" in {row[1] for row in console["subscriptions"]}, console
        by_session = {row[0]: row for row in console["sessionList"]}
        assert by_session[str(callee.session_id)][1] == "1", console  # the callee, on node 1
        assert by_session[str(page["session"])][1] == "2", console  # the page, on node 2
        assert "/" in console["rates"], console
        after = result["consoleAfterJoin"]
        assert after["sessions"] == console["sessions"] + 1, result
        assert {row[0] for row in after["sessionList"]} >= {str(result["joined"])}, result
        assert "wamp.session.on_join" in after["events"], after["events"]
        bare = result["bareConsole"]
        assert bare["state"] == "joined realm1 as admin" and bare["node"] == "2", bare
        callee.leave()
    finally:
        cluster.stop()
