"""Node-to-node security with real `junction` processes: a cluster secret that
every gRPC request between nodes must carry (a node with another secret cannot
join; a gRPC client without it — `junction cluster status` — is refused with
Unauthenticated), and mutual TLS between nodes (a node whose certificate comes
from another CA cannot join). Cross-node calls work in both set-ups."""

import asyncio
import os
import subprocess

import pytest

from cluster_helpers import start_cluster
from conftest import ALL_COMBOS, RouterError, connect_session, junction_bin
from tls_certs import CA

pytestmark = pytest.mark.timeout(90)

SECRET = 'secret = "correct horse battery staple"\njoin_timeout_ms = 4000\n'


async def cross_node_call(cluster):
    callee = await connect_session(cluster[1], ALL_COMBOS[0])
    await callee.register(lambda x: x * 2, "com.sec.double")
    await cluster.sync()
    caller = await connect_session(cluster[2], ALL_COMBOS[4])
    assert await caller.call("com.sec.double", 21) == 42
    callee.leave()
    caller.leave()


def status(addr, env=None, config=None):
    args = [str(junction_bin())]
    if config:
        args += ["--config", str(config)]
    args += ["cluster", "status", "--node", addr]
    full_env = {k: v for k, v in os.environ.items() if k != "JUNCTION_CLUSTER_SECRET"}
    full_env.update(env or {})
    return subprocess.run(args, capture_output=True, text=True, timeout=20, env=full_env)


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
    allowed = status(addr, env={"JUNCTION_CLUSTER_SECRET": "correct horse battery staple"})
    assert allowed.returncode == 0, allowed.stderr
    assert "leader" in allowed.stdout
    allowed = status(addr, config=secured[1].config_path)
    assert allowed.returncode == 0, allowed.stderr
    # a node with another secret cannot join: it gives up with a clear error
    secured.extra = 'secret = "wrong"\njoin_timeout_ms = 4000\n'
    with pytest.raises(RouterError) as e:
        secured.add_node()
    assert "could not join" in str(e.value), e.value
    assert secured[1].alive() and secured[2].alive()


@pytest.fixture
def pki(tmp_path):
    ca = CA(tmp_path / "cluster-ca")
    nodes = {i: ca.issue("127.0.0.1", f"node{i}") for i in (1, 2, 3)}
    other = CA(tmp_path / "other-ca", name="Other CA")
    return ca, nodes, other


def tls_extra(ca_path, issued):
    return (f'join_timeout_ms = 4000\n[cluster.tls]\ncert = "{issued.cert}"\nkey = "{issued.key}"\n'
            f'ca = "{ca_path}"\n')


async def test_mutual_tls_between_nodes(pki, request):
    ca, nodes, other = pki
    from cluster_helpers import Cluster

    c = Cluster(f"test_cluster_security_{request.node.name}", n=2)
    # each node its own certificate: patch the extra per node as it starts
    original = c._start_node

    def start_node(i, peers):
        c.extra = tls_extra(ca.path, nodes.get(i) or other.issue("127.0.0.1", f"intruder{i}"))
        return original(i, peers)

    c._start_node = start_node
    try:
        c.start()
        await cross_node_call(c)
        ok = status(c[1].grpc_addr, config=c[1].config_path)
        assert ok.returncode == 0 and "leader" in ok.stdout, ok.stderr
        plain = status(c[1].grpc_addr)
        assert plain.returncode != 0, "a client without a certificate is refused"
        # a node whose certificate another CA signed cannot join
        nodes.pop(3)
        with pytest.raises(RouterError) as e:
            c.add_node()
        assert "could not join" in str(e.value), e.value
    finally:
        c.stop()
