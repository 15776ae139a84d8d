# deploy/local-cluster.sh, the quick local 3-node cluster: `start` brings up three
# real `junction` processes (JUNCTION_BIN, as for the rest of the suite) on
# 127.0.0.1 with the script's fixed port layout shifted by a JUNCTION_PORT_OFFSET
# whose 12 ports are free, in a temporary JUNCTION_LOCAL_DIR. Autobahn|Python
# clients then route a call and an event across nodes through the advertised
# ports, `status` shows the three members, a second `start` is refused, `stop`
# ends the processes and `clean` removes the state directory.
#
# Nothing sleeps to synchronise: `start` itself returns once every node's /readyz
# is 200, the call waits for the registration to be applied on the caller's node
# (the leader's commit index, polled with `junction cluster status`), the event is
# awaited as a future, and `stop` returns once the processes exited.
import asyncio
import os
import random
import signal
import socket
from pathlib import Path

import pytest
from autobahn.wamp.types import PublishOptions

from cluster_helpers import parse_status, run_status, wait_until
from conftest import ALL_COMBOS, REPO_ROOT, Combo, Wamp, junction_bin, ticket_session

pytestmark = pytest.mark.timeout(180)

SCRIPT = REPO_ROOT / "deploy" / "local-cluster.sh"
NODES = (1, 2, 3)
SCRIPT_TIMEOUT = 90.0
CALL_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0


def ports(offset, i):
    """(websocket, rawsocket, admin, cluster gRPC) of node i, as the script lays them out."""
    return 8080 + i + offset, 8090 + i + offset, 8100 + i + offset, 7000 + i + offset


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_offset():
    """An offset whose 12 ports are free now. Offsets up to 24600 keep every port
    below 32768, out of Linux's default ephemeral range, so outgoing connections
    of other processes do not take them meanwhile."""
    rng = random.Random()
    for _ in range(200):
        offset = rng.randrange(20000, 24600)
        if all(port_is_free(p) for i in NODES for p in ports(offset, i)):
            return offset
    pytest.skip("found no JUNCTION_PORT_OFFSET with 12 free ports")


class NodeAddr:
    """What conftest's connect_session needs to reach a node of the script's cluster."""

    def __init__(self, offset, i):
        ws, rs, _, _ = ports(offset, i)
        self.ws_url = f"ws://127.0.0.1:{ws}/ws"
        self.ws_addr = ("127.0.0.1", ws)
        self.rs_addr = ("127.0.0.1", rs)


class LocalCluster:
    def __init__(self, state_dir, offset):
        self.state_dir = Path(state_dir)
        self.offset = offset
        self.env = dict(os.environ, JUNCTION_BIN=str(junction_bin()), JUNCTION_LOCAL_DIR=str(state_dir),
                        JUNCTION_PORT_OFFSET=str(offset))
        self.pids = {}

    async def run(self, *args, timeout=SCRIPT_TIMEOUT, remembered=False):
        """Runs the script; returns (exit code, stdout, stderr). `remembered`: without
        JUNCTION_BIN and JUNCTION_PORT_OFFSET (the script takes those `start` used)."""
        env = dict(self.env)
        if remembered:
            del env["JUNCTION_BIN"], env["JUNCTION_PORT_OFFSET"]
        proc = await asyncio.create_subprocess_exec(
            "bash", str(SCRIPT), *args, env=env, cwd=str(REPO_ROOT),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"`local-cluster.sh {' '.join(args)}` took more than {timeout}s")
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def read_pids(self):
        for i in NODES:
            f = self.state_dir / f"node{i}.pid"
            if f.exists():
                self.pids[i] = int(f.read_text().strip())
        return dict(self.pids)

    def grpc(self, i):
        return f"127.0.0.1:{ports(self.offset, i)[3]}"

    def node(self, i):
        return NodeAddr(self.offset, i)

    def logs(self):
        return "\n".join(f"--- node{i}.log:\n{(self.state_dir / f'node{i}.log').read_text(errors='replace')[-3000:]}"
                         for i in NODES if (self.state_dir / f"node{i}.log").exists())


def process_gone(pid):
    """No such process, or only its zombie (not reaped yet by whoever adopted it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture
async def local_cluster(tmp_path):
    lc = LocalCluster(tmp_path / "local-cluster", free_offset())
    yield lc
    # Whatever the test did: stop the nodes it started (the script, then by pid).
    if lc.state_dir.exists():
        await lc.run("stop")
    for pid in lc.read_pids().values():
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)


async def wait_applied_everywhere(lc):
    """Until every node applied what the leader had committed (a registration
    answered on one node is then known on the others)."""
    first = await run_status(lc.grpc(1))
    leader = first.leader
    assert leader is not None, first.text
    target = (await run_status(lc.grpc(leader))).committed or 0

    async def probe():
        sts = [await run_status(lc.grpc(i)) for i in NODES]
        return all((st.applied or 0) >= target for st in sts)

    await wait_until(probe, 15.0, f"every node to apply up to index {target}")


async def test_start_route_status_stop_clean(local_cluster):
    lc = local_cluster
    assert junction_bin().exists(), f"no junction binary at {junction_bin()}"

    rc, out, err = await lc.run("start")
    assert rc == 0, f"start failed ({rc}):\n{out}\n{err}\n{lc.logs()}"
    pids = lc.read_pids()
    assert sorted(pids) == list(NODES), out
    assert all(not process_gone(p) for p in pids.values()), pids
    # The table names every node's addresses and the token file.
    for i in NODES:
        ws, rs, admin, _ = ports(lc.offset, i)
        assert f"ws://127.0.0.1:{ws}/ws" in out and f"rs://127.0.0.1:{rs}" in out, out
        assert f"http://127.0.0.1:{admin}/console" in out, out
    token_file = lc.state_dir / "admin.token"
    assert str(token_file) in out, out
    assert f"JUNCTION_LOCAL_DIR={lc.state_dir} {SCRIPT} stop" in out, out
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert len(token_file.read_text().strip()) >= 32
    for i in NODES:
        assert (lc.state_dir / "data" / f"node{i}").is_dir()

    w = Wamp(lc.node(1), ALL_COMBOS[0])
    try:
        # RPC: callee on node 3 (RawSocket, CBOR), caller on node 2 (WebSocket, MessagePack).
        callee = await w.session(router=lc.node(3), combo=Combo("rawsocket", "cbor"))
        await callee.register(lambda a, b: f"{a}+{b} on node 3", "com.example.localcluster.add")
        await wait_applied_everywhere(lc)
        caller = await w.session(router=lc.node(2), combo=Combo("websocket", "msgpack"))
        result = await asyncio.wait_for(caller.call("com.example.localcluster.add", 2, 3), CALL_TIMEOUT)
        assert result == "2+3 on node 3"

        # PubSub: subscriber on node 1, publisher on node 3.
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        def on_event(*args, **kwargs):
            if not got.done():
                got.set_result((args, kwargs))

        subscriber = await w.session(router=lc.node(1), combo=Combo("websocket", "json"))
        await subscriber.subscribe(on_event, "com.example.localcluster.topic")
        publisher = await w.session(router=lc.node(3), combo=Combo("websocket", "json"))
        await asyncio.wait_for(
            publisher.publish("com.example.localcluster.topic", "hello", n=1,
                              options=PublishOptions(acknowledge=True)), CALL_TIMEOUT)
        args, kwargs = await asyncio.wait_for(got, EVENT_TIMEOUT)
        assert list(args) == ["hello"] and kwargs == {"n": 1}

        # The console's way in: the principal "admin" with the token as its ticket
        # joins with the admin role and may call the junction.* procedures.
        admin = await w.session(router=lc.node(1), combo=Combo("websocket", "json"),
                                session_cls=ticket_session("admin", token_file.read_text().strip()))
        assert admin.joined.result().authrole == "admin"
        status = await asyncio.wait_for(admin.call("junction.cluster.status"), CALL_TIMEOUT)
        assert {m["node"] for m in status["cluster"]["members"]} == set(NODES), status
    finally:
        await w.close()

    # status: the three processes and the three members (the script remembers the
    # binary and the port offset of the cluster in its state directory).
    rc, out, err = await lc.run("status", remembered=True)
    assert rc == 0, f"status failed ({rc}):\n{out}\n{err}"
    for i in NODES:
        assert f"node {i}: running (pid {pids[i]})" in out, out
    st = parse_status(out)
    assert sorted(st.members) == list(NODES), out
    assert all(m.up for m in st.members.values()), out

    # A second start is refused while the cluster runs, and changes nothing.
    rc, out, err = await lc.run("start")
    assert rc == 1, f"second start: exit {rc}\n{out}\n{err}"
    assert "already running" in err, err
    assert lc.read_pids() == pids
    assert all(not process_gone(p) for p in pids.values())

    # stop: every node exits, the pid files go.
    rc, out, err = await lc.run("stop", remembered=True)
    assert rc == 0, f"stop failed ({rc}):\n{out}\n{err}"
    assert "SIGKILL" not in err, err
    gone = {i: process_gone(p) for i, p in pids.items()}
    assert all(gone.values()), f"still running after stop: {gone}"
    assert not any((lc.state_dir / f"node{i}.pid").exists() for i in NODES)
    rc, out, err = await lc.run("status")
    assert rc != 0 and all(f"node {i}: not running" in out for i in NODES), out

    # clean: the state directory goes.
    assert lc.state_dir.is_dir()
    rc, out, err = await lc.run("clean", remembered=True)
    assert rc == 0, f"clean failed ({rc}):\n{out}\n{err}"
    assert not lc.state_dir.exists()


async def test_bad_usage_exits_2(tmp_path):
    lc = LocalCluster(tmp_path / "local-cluster", 0)
    for args in ((), ("launch",), ("start", "now")):
        rc, out, err = await lc.run(*args)
        assert rc == 2, f"{args}: exit {rc}\n{out}\n{err}"
        assert "usage:" in err, err
    assert not lc.state_dir.exists()


async def test_start_refuses_a_taken_port(tmp_path):
    lc = LocalCluster(tmp_path / "local-cluster", free_offset())
    taken = ports(lc.offset, 2)[2]  # node 2's admin port
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", taken))
        s.listen()
        rc, out, err = await lc.run("start")
    finally:
        s.close()
    assert rc == 1, f"exit {rc}\n{out}\n{err}"
    assert f"port(s) {taken} on 127.0.0.1 are in use" in err, err
    assert not any((lc.state_dir / f"node{i}.pid").exists() for i in NODES)
