"""Node-to-node security with real `junction` processes.

- The cluster port is never open: a node whose `cluster.listen` is not loopback
  refuses to start (exit 2, one line on stderr) without a cluster secret or
  `[cluster.tls]`, and a secret shorter than 16 bytes is refused the same way.
- A cluster secret that every gRPC request between nodes must carry: a stranger —
  a node with its own configuration and no or another secret, or the `junction
  cluster` CLI without it — can neither read the status, join (as a voter or a
  learner), remove a member nor route anything through the cluster; membership
  stays as it was and calls keep working.
- Mutual TLS between nodes, with a node's id bound to its certificate (DNS SAN
  `node-<id>`): a node whose certificate another CA signed cannot join, and a node
  presenting a valid certificate of the cluster CA for node A cannot join as node
  B, not even as a member's id. Cross-node calls work in both set-ups."""

import os
import socket
import subprocess

import pytest

from cluster_helpers import Cluster, Node, free_ports, log_dir_for, node_config, start_cluster
from conftest import ALL_COMBOS, RouterError, connect_session, junction_bin
from tls_certs import CA

pytestmark = pytest.mark.timeout(90)

CLUSTER_SECRET = "correct horse battery staple"
SECRET = f'secret = "{CLUSTER_SECRET}"\njoin_timeout_ms = 4000\n'


def clean_env(extra=None):
    """The test's environment without a cluster secret, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_CLUSTER_SECRET")}
    env.update(extra or {})
    return env


def junction(*args, env=None, config=None, timeout=20):
    """Runs `junction [--config FILE] ARGS...` to completion."""
    cmd = [str(junction_bin())] + (["--config", str(config)] if config else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(env))


async def cross_node_call(cluster, procedure="com.sec.double"):
    callee = await connect_session(cluster[1], ALL_COMBOS[0])
    await callee.register(lambda x: x * 2, procedure)
    await cluster.sync()
    caller = await connect_session(cluster[2], ALL_COMBOS[4])
    assert await caller.call(procedure, 21) == 42
    callee.leave()
    caller.leave()


def status(addr, env=None, config=None):
    return junction("cluster", "status", "--node", addr, env=env, config=config)


async def members(cluster, i=1):
    """{node id: role} as node i reports them (with the node's own credentials)."""
    st = await cluster.status(i)
    return {n: m.role for n, m in st.members.items()}


def assert_cannot_join(name, node_id, peers, extra, voters=3):
    """Starts a node with its own configuration on 127.0.0.1 that tries to join
    through `peers`, and asserts that it gives up ("could not join", before
    `ready`). A stranger that gets in is stopped and fails the test."""
    log_dir = log_dir_for(name)
    grpc = f"127.0.0.1:{free_ports(1)[0]}"
    path = log_dir / f"stranger{node_id}.toml"
    path.write_text(node_config(node_id, grpc, peers, bootstrap=False, voters=voters, extra=extra))
    log = log_dir / f"stranger{node_id}.stderr.log"
    try:
        node = Node(node_id, grpc, path, log)
    except RouterError:
        assert "could not join" in log.read_text(errors="replace"), log
        return
    node.stop(timeout=3)
    pytest.fail(f"stranger node {node_id} joined the cluster (log: {log})")


# --- the startup rule --------------------------------------------------------


def startup_failure(tmp_path, cluster_toml, env=None):
    path = tmp_path / "node.toml"
    path.write_text(f'[websocket]\nlisten = "127.0.0.1:0"\n[rawsocket]\nlisten = ""\n[cluster]\n{cluster_toml}')
    r = junction(config=path, env=env)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    return r, lines


@pytest.mark.parametrize("listen", ["0.0.0.0", "[::]"])
def test_a_node_with_a_reachable_cluster_port_and_no_secret_refuses_to_start(tmp_path, listen):
    port = free_ports(1)[0]
    r, lines = startup_failure(tmp_path, f'listen = "{listen}:{port}"\nadvertise = "127.0.0.1:{port}"\n'
                                         f'peers = ["127.0.0.1:{free_ports(1)[0]}"]\n')
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("junction:") and f"cluster.listen {listen}:{port}" in line, line
    for fix in ("cluster.secret_file", "cluster.secret", "JUNCTION_CLUSTER_SECRET", "[cluster.tls]"):
        assert fix in line, line
    assert "ready" not in r.stdout


@pytest.mark.parametrize("how", ["secret", "secret_file", "JUNCTION_CLUSTER_SECRET", "JUNCTION_CLUSTER_SECRET_FILE"])
def test_a_node_with_a_reachable_cluster_port_and_a_secret_passes_the_startup_check(tmp_path, how):
    # Past the configuration, the node stops at the admin port, held here (so the
    # test binds nothing on 0.0.0.0): exit 1 naming it, not the exit 2 of a refusal.
    secret_path = tmp_path / "cluster.secret"
    secret_path.write_text("0123456789abcdef0123456789abcdef\n")
    toml = {"secret": 'secret = "0123456789abcdef"\n', "secret_file": f'secret_file = "{secret_path}"\n'}
    env = {"JUNCTION_CLUSTER_SECRET": "0123456789abcdef", "JUNCTION_CLUSTER_SECRET_FILE": str(secret_path)}
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        admin = f'[admin]\nlisten = "127.0.0.1:{held.getsockname()[1]}"\n'
        path = tmp_path / "node.toml"
        path.write_text(f'[websocket]\nlisten = "127.0.0.1:0"\n[rawsocket]\nlisten = ""\n{admin}[cluster]\n'
                        f'listen = "0.0.0.0:{free_ports(1)[0]}"\nbootstrap = true\n{toml.get(how, "")}')
        r = junction(config=path, env={how: env[how]} if how in env else None)
    assert r.returncode == 1 and "cannot listen for admin HTTP" in r.stderr, (r.returncode, r.stderr)


def test_a_lone_node_with_a_reachable_cluster_port_refuses_to_start_too(tmp_path):
    # no peers: still a gRPC port anyone on the network could join through
    r, lines = startup_failure(tmp_path, f'listen = "0.0.0.0:{free_ports(1)[0]}"\nbootstrap = true\n')
    assert r.returncode == 2 and len(lines) == 1 and "reachable from other hosts" in lines[0], r.stderr


def test_a_cluster_secret_shorter_than_16_bytes_is_refused(tmp_path):
    port = free_ports(1)[0]
    r, lines = startup_failure(tmp_path, f'listen = "0.0.0.0:{port}"\nsecret = "hunter2"\nbootstrap = true\n')
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "cluster.secret" in lines[0] and "16" in lines[0], lines
    r, lines = startup_failure(tmp_path, f'listen = "0.0.0.0:{port}"\nbootstrap = true\n',
                               env={"JUNCTION_CLUSTER_SECRET": "short"})
    assert r.returncode == 2 and len(lines) == 1 and "JUNCTION_CLUSTER_SECRET" in lines[0], r.stderr


def test_an_unreadable_secret_file_is_refused(tmp_path):
    missing = tmp_path / "no-such-secret"
    r, lines = startup_failure(tmp_path, f'listen = "0.0.0.0:{free_ports(1)[0]}"\nbootstrap = true\n',
                               env={"JUNCTION_CLUSTER_SECRET_FILE": str(missing)})
    assert r.returncode == 2 and len(lines) == 1 and str(missing) in lines[0], r.stderr


# --- the cluster secret ------------------------------------------------------


@pytest.fixture
def secured(request):
    c = start_cluster(f"test_cluster_security_{request.node.name}", n=2, extra=SECRET)
    yield c
    c.stop()


async def test_cluster_secret(secured):
    await cross_node_call(secured)
    addr = secured[1].grpc_addr
    refused = status(addr)
    assert refused.returncode != 0
    assert "cluster secret" in refused.stderr or "Unauthenticated" in refused.stderr, refused.stderr
    allowed = status(addr, env={"JUNCTION_CLUSTER_SECRET": CLUSTER_SECRET})
    assert allowed.returncode == 0, allowed.stderr
    assert "leader" in allowed.stdout
    allowed = status(addr, config=secured[1].config_path)
    assert allowed.returncode == 0, allowed.stderr
    # a node with another secret cannot join: it gives up with a clear error
    secured.extra = 'secret = "another secret, long enough"\njoin_timeout_ms = 4000\n'
    with pytest.raises(RouterError) as e:
        secured.add_node()
    assert "could not join" in str(e.value), e.value
    assert secured[1].alive() and secured[2].alive()


async def test_a_stranger_without_the_secret_can_neither_join_nor_change_the_membership(secured, request):
    before = await members(secured)
    assert before == {1: "voter", 2: "voter"}
    peers = [secured[1].grpc_addr, secured[2].grpc_addr]
    name = f"test_cluster_security_{request.node.name}"
    # its own node, no secret, asking to join (voters = 5: it would get a seat)
    assert_cannot_join(name, 3, peers, "join_timeout_ms = 3000\n", voters=5)
    # with a wrong secret, and claiming a member's id
    assert_cannot_join(name, 2, peers, 'secret = "not the cluster secret"\njoin_timeout_ms = 3000\n')
    # the admin calls, without and with a wrong secret
    wrong = {"JUNCTION_CLUSTER_SECRET": "not the cluster secret"}
    for env in (None, wrong):
        for args in (["remove", "--id", "2"], ["remove", "--id", "1"], ["add", "--id", "3", "--voter"]):
            r = junction("cluster", *args, "--node", peers[0], env=env)
            assert r.returncode != 0, (args, r.stdout)
            assert "secret" in r.stderr or "Unauthenticated" in r.stderr, (args, r.stderr)
    assert await members(secured) == before
    assert await members(secured, 2) == before
    await cross_node_call(secured, "com.sec.still_works")


# --- mutual TLS --------------------------------------------------------------


@pytest.fixture
def pki(tmp_path):
    ca = CA(tmp_path / "cluster-ca")
    nodes = {i: ca.issue("127.0.0.1", f"node{i}", node_id=i) for i in (1, 2, 3)}
    other = CA(tmp_path / "other-ca", name="Other CA")
    return ca, nodes, other


def tls_extra(ca_path, issued):
    return (f'join_timeout_ms = 4000\n[cluster.tls]\ncert = "{issued.cert}"\nkey = "{issued.key}"\n'
            f'ca = "{ca_path}"\n')


def tls_cluster(request, certs, ca):
    """A 2-node cluster where node i presents certs[i] (or, if missing, whatever the
    test puts into certs before add_node)."""
    c = Cluster(f"test_cluster_security_{request.node.name}", n=2)
    original = c._start_node

    def start_node(i, peers):
        c.extra = tls_extra(ca.path, certs[i])
        return original(i, peers)

    c._start_node = start_node
    return c


async def test_mutual_tls_between_nodes(pki, request):
    ca, nodes, other = pki
    certs = dict(nodes)
    c = tls_cluster(request, certs, ca)
    try:
        c.start()
        await cross_node_call(c)
        ok = status(c[1].grpc_addr, config=c[1].config_path)
        assert ok.returncode == 0 and "leader" in ok.stdout, ok.stderr
        plain = status(c[1].grpc_addr)
        assert plain.returncode != 0, "a client without a certificate is refused"
        # a node whose certificate another CA signed (naming node 3) cannot join
        certs[3] = other.issue("127.0.0.1", "intruder3", node_id=3)
        with pytest.raises(RouterError) as e:
            c.add_node()
        assert "could not join" in str(e.value), e.value
    finally:
        c.stop()


async def test_a_certificate_for_one_node_cannot_join_as_another(pki, request):
    ca, nodes, _ = pki
    certs = {1: nodes[1], 2: nodes[2]}
    c = tls_cluster(request, certs, ca)
    name = f"test_cluster_security_{request.node.name}"
    peers = lambda: [c[1].grpc_addr, c[2].grpc_addr]  # noqa: E731
    try:
        c.start()
        before = await members(c)
        assert before == {1: "voter", 2: "voter"}
        # a valid certificate of the cluster CA for node 3, claiming the new id 4
        assert_cannot_join(name, 4, peers(), tls_extra(ca.path, nodes[3]))
        # ... and claiming member 2's id (impersonation)
        assert_cannot_join(name, 2, peers(), tls_extra(ca.path, nodes[3]))
        # a certificate of the cluster CA that names no node at all
        assert_cannot_join(name, 5, peers(), tls_extra(ca.path, ca.issue("127.0.0.1", "nameless")))
        assert await members(c) == before
        await cross_node_call(c, "com.sec.tls_still_works")
        # the certificate for node 3 does let node 3 join
        certs[3] = nodes[3]
        c.add_node()
        assert (await c.wait_status(1, lambda st: 3 in st.members, 15, "node 3 a member")).members[3].up
    finally:
        c.stop()
