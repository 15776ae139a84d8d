"""The `junction.*` admin procedures (admin role only) through Autobahn|Python:
cluster status, stats, session list and kill on one node; configuration reload
(principals, roles, log level); removing a node from a 3-node cluster through
`junction.cluster.remove_node` and through the CLI `junction cluster remove`;
adding learners to the voters through `junction.cluster.add_node` and
`junction cluster add --voter`, with the CLI's exit codes."""

import asyncio
import re
import subprocess

import pytest
from autobahn.wamp.exception import ApplicationError

from cluster_helpers import start_cluster, wait_until
from conftest import ALL_COMBOS, connect_session, junction_bin
from test_auth import session_for

pytestmark = pytest.mark.timeout(60)

CONFIG = """
[admin]
realm = "realm1"

[[realms]]
name = "realm1"
[realms.auth.ticket.principals.root]
role = "admin"
ticket = "r"
[realms.auth.ticket.principals.alice]
role = "user"
ticket = "a"
"""


async def as_user(router, authid, combo=ALL_COMBOS[0]):
    s = await connect_session(router, combo, session_cls=session_for(authid, ["ticket"], authid[0]))
    await s.joined
    return s


@pytest.fixture
def router(start_router):
    return start_router(config=CONFIG)


async def test_admin_procedures_on_one_node(router):
    root = await as_user(router, "root")
    alice = await as_user(router, "alice", ALL_COMBOS[4])
    st = await root.call("junction.cluster.status")
    assert st["ready"] is True and st["session_count"] == 2 and st["sessions"] == {"realm1": 2}, st
    assert st["cluster"]["leader"]["node"] == st["node"], st
    nodes = [(n["node"], n["answered"], sorted(n["sessions"]["realm1"])) for n in st["nodes"]]
    assert nodes == [(st["node"], True, sorted([root.session_id, alice.session_id]))], st
    listed = await root.call("junction.session.list")
    assert {s["session"] for s in listed} == {root.session_id, alice.session_id}, listed
    assert {s["authid"] for s in listed} == {"root", "alice"} and all(s["pending_calls"] == 0 for s in listed), listed
    stats = await root.call("junction.stats")
    assert stats["sessions"] == 2 and stats["messages_in"] >= 4 and stats["messages_out"] >= 4, stats
    assert stats["messages_in_by_type"]["call"] >= 3 and stats["time_ms"] > 0, stats
    assert set(stats["call_latency"]) == {"p50", "p90", "p99", "buckets"}, stats
    nodes = (await root.call("junction.cluster.stats"))["nodes"]
    assert [n["node"] for n in nodes] == [stats["node"]] and nodes[0]["answered"], nodes
    assert nodes[0]["links"] == [] and "call_latency" in nodes[0], nodes
    await root.call("junction.session.kill", alice.session_id, reason="com.example.bye", message="maintenance")
    details = await asyncio.wait_for(asyncio.shield(alice.left), 10)
    assert (details.reason, details.message) == ("com.example.bye", "maintenance")
    with pytest.raises(ApplicationError) as e:
        await root.call("junction.session.kill", 42)
    assert e.value.error == "wamp.error.no_such_session"
    with pytest.raises(ApplicationError) as e:
        await root.call("junction.cluster.nope")
    assert e.value.error == "wamp.error.no_such_procedure"
    root.leave()


async def test_admin_procedures_need_the_admin_role(router):
    alice = await as_user(router, "alice")
    for proc in ("junction.cluster.status", "junction.session.list", "junction.cluster.remove_node",
                 "junction.cluster.add_node", "junction.session.kill", "junction.config.reload",
                 "junction.stats", "junction.cluster.stats", "junction.registration.callees"):
        with pytest.raises(ApplicationError) as e:
            await alice.call(proc)
        assert e.value.error == "wamp.error.not_authorized", proc
    alice.leave()


@pytest.fixture
def cluster(request):
    c = start_cluster(f"test_admin_api_{request.node.name}", n=3, extra=CONFIG)
    yield c
    c.stop()


def members(status):
    return {m["node"] for m in status["cluster"]["members"]}


async def test_remove_a_node_through_wamp_and_the_cli(cluster):
    root = await as_user(cluster[1], "root")
    assert members(await root.call("junction.cluster.status")) == {1, 2, 3}
    index = await root.call("junction.cluster.remove_node", 3)
    assert isinstance(index, int)
    await cluster.sync(ids=[1, 2])
    assert members(await root.call("junction.cluster.status")) == {1, 2}
    # the CLI, asked of a node that need not be the leader
    out = subprocess.run([str(junction_bin()), "cluster", "remove", "--node", cluster[2].grpc_addr, "--id", "2"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "node 2 removed" in out.stdout, out.stderr
    await cluster.sync(ids=[1])
    assert members(await root.call("junction.cluster.status")) == {1}
    bad = subprocess.run([str(junction_bin()), "cluster", "remove", "--node", "127.0.0.1:1", "--id", "9"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "cannot" in bad.stderr
    root.leave()


async def test_config_reload(router):
    from conftest import JoinFailed

    path = router.args[router.args.index("--config") + 1]
    root = await as_user(router, "root")
    with pytest.raises(JoinFailed) as e:
        await as_user(router, "bob")
    assert e.value.reason == "wamp.error.authentication_denied"
    with open(path, "a") as f:
        f.write('\n[realms.auth.ticket.principals.bob]\nrole = "user"\nticket = "b"\n')
    done = await root.call("junction.config.reload")
    assert done["applied"] == ["realm realm1: authentication and roles"], done
    assert done["restart_required"] == [], done
    bob = await as_user(router, "bob")
    assert (await bob.joined).authrole == "user"
    # roles from the file take effect too: bob may no longer call anything
    with open(path, "a") as f:
        f.write('\n[[realms.roles]]\nname = "admin"\n[[realms.roles.permissions]]\nuri = ""\nmatch = "prefix"\n'
                'call = true\n[[realms.roles]]\nname = "user"\n\n[limits]\nmax_pending_calls = 5\n')
    done = await root.call("junction.config.reload")
    assert done["restart_required"] == ["[limits]"], done
    with pytest.raises(ApplicationError) as e:
        await bob.call("wamp.session.count")
    assert e.value.error == "wamp.error.not_authorized"
    # a broken file changes nothing
    with open(path, "a") as f:
        f.write("\nthis is not toml\n")
    with pytest.raises(ApplicationError) as e:
        await root.call("junction.config.reload")
    assert e.value.error == "wamp.error.invalid_argument" and "not reloaded" in e.value.args[0]
    assert await root.call("wamp.session.count") == 2
    for s in (root, bob):
        s.leave()


def cli(*args, timeout=30):
    return subprocess.run([str(junction_bin()), "cluster", *args], capture_output=True, text=True,
                          timeout=timeout)


async def test_add_learners_to_the_voters(request):
    c = start_cluster(f"test_admin_api_{request.node.name}", n=4, voters=2, extra=CONFIG)
    try:
        root = await as_user(c[1], "root")
        # the seats settle on the lowest ids up (a node that joined early may vote
        # until a lower one is promoted in its place)
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            st = await root.call("junction.cluster.status")
            roles = {m["node"]: m["role"] for m in st["cluster"]["members"]}
            learners = sorted(n for n, r in roles.items() if r == "learner")
            if len(learners) == 2 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)  # polling the status until the seats settle
        assert learners == [3, 4], roles
        first, second = learners
        # every node's sessions, asked over the links
        assert sorted(n["node"] for n in st["nodes"]) == [1, 2, 3, 4] and all(n["answered"] for n in st["nodes"]), st
        # without --voter, `add` checks that the node joined and says its role
        out = cli("add", "--node", c[first].grpc_addr, "--id", str(first))
        assert out.returncode == 0 and out.stdout.strip() == f"node {first} is a member (learner)", out
        # through the CLI, asked of the learner itself (it forwards to the leader)
        out = cli("add", "--node", c[first].grpc_addr, "--id", str(first), "--voter")
        assert out.returncode == 0 and re.fullmatch(rf"node {first} is a voter \(log index \d+\)\n", out.stdout), out
        out = cli("add", "--node", c[1].grpc_addr, "--id", str(first), "--voter")
        assert out.returncode == 0 and f"node {first} is a voter already" in out.stdout, out
        # through WAMP
        assert await root.call("junction.cluster.add_node", second) == {"node": second, "role": "learner"}
        done = await root.call("junction.cluster.add_node", second, voter=True)
        assert done["role"] == "voter" and isinstance(done["log_index"], int), done
        await c.sync()
        roles = {m["node"]: m["role"] for m in (await root.call("junction.cluster.status"))["cluster"]["members"]}
        assert roles == {1: "voter", 2: "voter", 3: "voter", 4: "voter"}, roles
        assert await root.call("junction.cluster.add_node", second, voter=True) == {"node": second, "role": "voter"}
        with pytest.raises(ApplicationError) as e:
            await root.call("junction.cluster.add_node", 42)
        assert e.value.error == "wamp.error.invalid_argument" and "not a member" in e.value.args[0]
        # errors and exit codes: refused 1, unreachable 3, bad flags 2
        out = cli("add", "--node", c[2].grpc_addr, "--id", "42", "--voter")
        assert out.returncode == 1 and "node 42 is not a member" in out.stderr, out
        out = cli("add", "--node", "127.0.0.1:1", "--id", "2")
        assert out.returncode == 3 and "cannot add node 2" in out.stderr, out
        out = cli("add", "--node", c[1].grpc_addr)
        assert out.returncode == 2 and "--id" in out.stderr, out
        root.leave()
    finally:
        c.stop()


async def test_config_reloads_when_the_file_changes_and_on_sighup(start_router):
    """The mounted file is re-read when its content changes (replaced the way a
    Kubernetes ConfigMap update replaces it) and on SIGHUP, without any call; a
    broken file changes nothing and the router keeps running."""
    import os
    import signal
    from conftest import JoinFailed

    router = start_router(config=CONFIG)
    path = router.args[router.args.index("--config") + 1]
    root = await as_user(router, "root")
    with pytest.raises(JoinFailed):
        await as_user(router, "bob")

    def replace(text):
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    replace(CONFIG + '\n[realms.auth.ticket.principals.bob]\nrole = "user"\nticket = "b"\n')

    async def bob_admitted():
        try:
            (await as_user(router, "bob")).leave()
            return True
        except JoinFailed:
            return False

    await wait_until(bob_admitted, 15, "bob admitted once the file changed")

    def log():
        return re.sub(r"\x1b\[[0-9;]*m", "", router.log_path.read_text(errors="replace"))

    os.kill(router.proc.pid, signal.SIGHUP)
    async def reloaded_on_hup():
        return "SIGHUP" in log() and "configuration reloaded" in log()

    async def failure_reported():
        return "configuration reload failed" in log()

    await wait_until(reloaded_on_hup, 10, "a reload on SIGHUP")
    assert router.proc.poll() is None, "SIGHUP must not end the router"
    replace(CONFIG + "\nthis is not toml\n")
    await wait_until(failure_reported, 15, "the broken file reported")
    assert await root.call("wamp.session.count") == 1
    assert await bob_admitted(), "the running configuration stays"
    root.leave()


async def test_config_placeholders_come_from_the_environment(start_router, monkeypatch, tmp_path):
    """${NAME} in the file is the environment variable NAME (one file for every
    replica; re-read as it is on reload); an unset one stops the start, exit 2."""
    monkeypatch.setenv("JUNCTION_TEST_ZED_TICKET", "z")
    config = CONFIG + '[realms.auth.ticket.principals.zed]\nrole = "user"\nticket = "${JUNCTION_TEST_ZED_TICKET}"\n'
    router = start_router(config=config)
    zed = await as_user(router, "zed")
    assert (await zed.joined).authrole == "user"
    zed.leave()
    bad = tmp_path / "unset.toml"
    bad.write_text(CONFIG + '[realms.auth.ticket.principals.zed]\nrole = "user"\nticket = "${JUNCTION_TEST_UNSET_X}"\n')
    done = subprocess.run([str(junction_bin()), "--config", str(bad), "--ws", "127.0.0.1:0"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2, done
    assert "${JUNCTION_TEST_UNSET_X} is not set" in done.stderr, done.stderr


async def test_log_level_reload(start_router):
    config = CONFIG + '\n[log]\nlevel = "warn"\n'
    router = start_router(config=config)
    path = router.args[router.args.index("--config") + 1]
    root = await as_user(router, "root")
    with open(path, "w") as f:
        f.write(CONFIG + '\n[log]\nlevel = "info,junction::router=debug"\n')
    done = await root.call("junction.config.reload")
    assert done["applied"] == ["realm realm1: authentication and roles",
                               '[log] level = "info,junction::router=debug"'], done
    assert done["restart_required"] == [], done
    alice = await as_user(router, "alice")

    async def joined_logged():
        text = re.sub(r"\x1b\[[0-9;]*m", "", router.log_path.read_text(errors="replace"))
        return f"session={alice.session_id}" in text and "DEBUG" in text

    await wait_until(joined_logged, 10, "a DEBUG line about the new session")
    with open(path, "w") as f:
        f.write(CONFIG + '\n[log]\nlevel = "info,=="\n')
    with pytest.raises(ApplicationError) as e:
        await root.call("junction.config.reload")
    assert "log.level" in e.value.args[0], e.value.args
    for s in (root, alice):
        s.leave()


# --------------------------------------------------------------------------
# The admin HTTP server ([admin] listen): bearer token, Host/Origin, JSON only
# --------------------------------------------------------------------------

ADMIN_TOKEN = "py-admin-token-91b6e0c2f7"


def admin_http(router, method, path, headers=(), body=None):
    """One request to the router's admin server; (status, headers, body text)."""
    import http.client
    from urllib.parse import urlparse

    u = urlparse(router.listeners["admin"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    names = {k.lower() for k, _ in headers}
    conn.putrequest(method, path, skip_host="host" in names, skip_accept_encoding=True)
    for k, v in headers:
        conn.putheader(k, v)
    data = body.encode() if body is not None else b""
    if method != "GET":
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    r = conn.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace"))
    conn.close()
    return out


def with_admin(keys):
    """CONFIG with more keys in its [admin] table."""
    assert '[admin]\nrealm = "realm1"\n' in CONFIG
    return CONFIG.replace('[admin]\nrealm = "realm1"\n', '[admin]\nrealm = "realm1"\n' + keys, 1)


def bearer(token=ADMIN_TOKEN):
    return ("Authorization", f"Bearer {token}")


@pytest.fixture
def admin_router(start_router, tmp_path, monkeypatch):
    """A router whose admin token comes from [admin] token_file."""
    monkeypatch.delenv("JUNCTION_ADMIN_TOKEN", raising=False)
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    return start_router("--admin", "127.0.0.1:0",
                        config=with_admin(f'token_file = "{token_file}"\n'))


async def alive(session):
    return await session.call("wamp.session.count") >= 1


async def test_admin_http_refuses_the_reported_attacks_and_the_session_survives(admin_router):
    alice = await as_user(admin_router, "alice")
    kill = f"/api/sessions/{alice.session_id}/kill"
    evil, text = ("Origin", "http://evil.example"), ("Content-Type", "text/plain")
    port = admin_router.listeners["admin"].rsplit(":", 1)[1]
    attacks = [
        ("GET", "/api/sessions", [], None, 401),                 # lists authids to anyone
        ("POST", kill, [evil, text], "", 403),                   # the CSRF of the report
        ("POST", kill, [evil, text, bearer()], "", 403),         # ... even with the token
        ("POST", kill, [text], "", 401),
        ("POST", kill, [text, bearer()], "", 415),               # a simple request is never a change
        ("POST", kill, [("Content-Type", "application/x-www-form-urlencoded"), bearer()], "a=b", 415),
        ("POST", kill, [("Content-Type", "application/json")], "{}", 401),
        ("POST", kill, [("Content-Type", "application/json"), bearer("wrong")], "{}", 401),
        ("POST", kill, [("Content-Type", "application/json"), bearer(), evil], "{}", 403),
        ("POST", kill, [("Content-Type", "application/json"), bearer(), ("Host", f"rebind.evil.example:{port}")],
         "{}", 403),
        ("GET", "/api/status", [bearer(), ("Host", "attacker.example")], None, 403),
    ]
    for method, path, headers, body, expected in attacks:
        status, h, text_ = admin_http(admin_router, method, path, headers, body)
        assert status == expected, (method, path, headers, status, text_)
        assert "alice" not in text_, text_
        if expected == 401:
            assert h.get("www-authenticate", "").startswith("Bearer"), h
        assert await alive(alice), (method, headers)
    # the operator's request: the token and a JSON body
    status, _, body = admin_http(admin_router, "POST", kill, [("Content-Type", "application/json"), bearer()],
                                 '{"reason": "com.example.bye", "message": "from the operator"}')
    assert status == 200, body
    details = await asyncio.wait_for(asyncio.shield(alice.left), 10)
    assert (details.reason, details.message) == ("com.example.bye", "from the operator")


async def test_admin_http_with_the_token_lists_sessions_and_the_probes_need_none(admin_router):
    root = await as_user(admin_router, "root")
    status, _, body = admin_http(admin_router, "GET", "/api/sessions", [bearer()])
    assert status == 200 and "root" in body, body
    for path in ("/healthz", "/readyz"):
        assert admin_http(admin_router, "GET", path)[0] == 200, path
    assert admin_http(admin_router, "GET", "/metrics")[0] == 401  # metrics_public defaults to false
    assert admin_http(admin_router, "GET", "/metrics", [bearer()])[0] == 200
    root.leave()


async def test_admin_http_is_closed_without_a_token(start_router, monkeypatch):
    monkeypatch.delenv("JUNCTION_ADMIN_TOKEN", raising=False)
    router = start_router("--admin", "127.0.0.1:0", config=with_admin("metrics_public = true\n"))
    alice = await as_user(router, "alice")
    assert [admin_http(router, "GET", p)[0] for p in ("/healthz", "/readyz", "/metrics")] == [200, 200, 200]
    for path in ("/api/sessions", "/api/status", "/api/stats", "/api/console-config", "/console"):
        status, h, body = admin_http(router, "GET", path, [bearer()])
        assert status == 401 and "Bearer" in h.get("www-authenticate", ""), (path, status, body)
    status, _, body = admin_http(router, "POST", f"/api/sessions/{alice.session_id}/kill",
                                 [("Content-Type", "application/json"), bearer()], "{}")
    assert status == 401 and "no token is configured" in body, body
    assert await alive(alice)
    alice.leave()


async def test_admin_token_from_the_environment_wins_over_the_file(start_router, tmp_path, monkeypatch):
    token_file = tmp_path / "admin-token"
    token_file.write_text("file-token-0d9c2e\n")
    monkeypatch.setenv("JUNCTION_ADMIN_TOKEN", "env-token-5a7f31")
    router = start_router("--admin", "127.0.0.1:0", config=with_admin(f'token_file = "{token_file}"\n'))
    assert admin_http(router, "GET", "/api/status", [bearer("env-token-5a7f31")])[0] == 200
    assert admin_http(router, "GET", "/api/status", [bearer("file-token-0d9c2e")])[0] == 401
