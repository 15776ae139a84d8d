"""The rendered config: what deploy/entrypoint.sh makes of the ConfigMap template
for each StatefulSet pod (and each compose node). Proves that the pods' names and
the headless Service's DNS form the peer list, advertise addresses, node ids and
bootstrap flag that junction's [cluster] section expects."""

from __future__ import annotations

import re

import pytest

from support import (
    ENTRYPOINT,
    TEMPLATE,
    compose_junction_services,
    entrypoint_env,
    k8s_one,
    pod_env,
    render,
    run,
    statefulset,
)


def pod_address(ordinal: int, namespace: str) -> str:
    """junction-N.<headless service>.<namespace>.svc.cluster.local:<grpc port>, from the manifests."""
    sts = statefulset()
    headless = k8s_one("Service", sts["spec"]["serviceName"])
    port = {p["name"]: p["port"] for p in headless["spec"]["ports"]}["grpc"]
    return f"{sts['metadata']['name']}-{ordinal}.{headless['metadata']['name']}.{namespace}.svc.cluster.local:{port}"


@pytest.mark.parametrize("namespace", ["junction", "prod-eu"])
@pytest.mark.parametrize("ordinal", [0, 1, 2, 3])
def test_statefulset_pod_renders_its_cluster_identity(ordinal, namespace):
    text, cfg = render(pod_env(ordinal, namespace))
    voters = int(pod_env(0)["JUNCTION_VOTERS"])
    c = cfg["cluster"]
    assert c["node_id"] == ordinal + 1
    assert c["bootstrap"] is (ordinal == 0)
    assert c["advertise"] == pod_address(ordinal, namespace)
    # Seeds: the voters (pods 0 .. voters-1), never the pod itself.
    assert c["peers"] == [pod_address(i, namespace) for i in range(voters) if i != ordinal]
    assert c["voters"] == voters == 3
    assert c["listen"] == "0.0.0.0:7001"
    assert c["data_dir"] == "/var/lib/junction"
    assert cfg["admin"]["listen"] == "0.0.0.0:8090"
    assert cfg["websocket"]["listen"] == "0.0.0.0:8080"
    assert cfg["rawsocket"]["listen"] == "0.0.0.0:8081"
    assert not [line for line in text.splitlines() if "${" in line and not line.startswith("#")]


def test_ordinals_beyond_the_voters_are_learners_that_join_the_voters():
    """Scaling out to 7 pods changes nothing for pods 0-2; 3-6 join through them."""
    voters = int(pod_env(0)["JUNCTION_VOTERS"])
    rendered = {o: render(pod_env(o))[1]["cluster"] for o in range(7)}
    ids = [c["node_id"] for c in rendered.values()]
    assert ids == sorted(set(ids)) == list(range(1, 8))
    assert [o for o, c in rendered.items() if c["bootstrap"]] == [0]
    advertised = {c["advertise"] for c in rendered.values()}
    voter_addrs = {pod_address(i, "junction") for i in range(voters)}
    for o, c in rendered.items():
        assert set(c["peers"]) | {c["advertise"]} >= voter_addrs
        assert set(c["peers"]) <= advertised, "a peer that no pod advertises"
        assert c["advertise"] not in c["peers"]
        assert c["voters"] == voters
        if o >= voters:
            assert set(c["peers"]) == voter_addrs


def test_compose_nodes_render_peers_by_service_name():
    services = compose_junction_services()
    assert len(services) == 3
    rendered = {}
    for name, svc in services.items():
        env = {k: v for k, v in svc["environment"].items() if v is not None}
        assert env["POD_NAME"] == name == svc["hostname"]
        rendered[name] = render(env)[1]["cluster"]
    assert sorted(c["node_id"] for c in rendered.values()) == [1, 2, 3]
    assert [n for n, c in rendered.items() if c["bootstrap"]] == ["junction-0"]
    for name, c in rendered.items():
        assert c["advertise"] == f"{name}:7001"
        assert sorted(c["peers"]) == sorted(f"{n}:7001" for n in services if n != name)


def test_standalone_container_is_a_one_node_cluster():
    # `docker run junction`: the hostname is a container id, not <name>-<ordinal>.
    _, cfg = render({"HOSTNAME": "3f2a9c1be0d4"})
    assert cfg["cluster"]["node_id"] == 1
    assert cfg["cluster"]["bootstrap"] is True
    assert cfg["cluster"]["peers"] == []


def test_explicit_settings_override_the_derived_ones():
    env = pod_env(2) | {
        "JUNCTION_NODE_ID": "42",
        "JUNCTION_BOOTSTRAP": "true",
        "JUNCTION_PEERS": "a.example:7001, b.example:7001",
        "JUNCTION_ADVERTISE": "10.0.0.7:7001",
    }
    c = render(env)[1]["cluster"]
    assert (c["node_id"], c["bootstrap"], c["advertise"]) == (42, True, "10.0.0.7:7001")
    assert c["peers"] == ["a.example:7001", "b.example:7001"]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"JUNCTION_VOTERS": "0"}, "JUNCTION_VOTERS"),
        ({"JUNCTION_VOTERS": "three"}, "JUNCTION_VOTERS"),
        ({"JUNCTION_NODE_ID": "0"}, "JUNCTION_NODE_ID"),
        ({"JUNCTION_BOOTSTRAP": "yes"}, "JUNCTION_BOOTSTRAP"),
        ({"JUNCTION_GRPC_PORT": "70000"}, "JUNCTION_GRPC_PORT"),
        ({"JUNCTION_PEERS": 'a:1,b"]\nbootstrap = true #:2'}, "JUNCTION_PEERS"),
        ({"JUNCTION_ADVERTISE": 'x:1"\nnode_id = 9'}, "JUNCTION_ADVERTISE"),
    ],
)
def test_bad_settings_are_refused_not_rendered(env, message):
    r = run(["bash", str(ENTRYPOINT), "render"], env=entrypoint_env(pod_env(1) | env), timeout=30)
    assert r.returncode == 2, r.stdout
    assert message in r.stderr and r.stdout == ""


def test_unset_placeholder_is_an_error(tmp_path):
    template = tmp_path / "t.toml"
    template.write_text("# ${NOT_SET} in a comment is left alone\n[x]\na = \"${NOT_SET_EITHER}\"\n")
    r = run(["bash", str(ENTRYPOINT), "render"], env=entrypoint_env(pod_env(0), template), timeout=30)
    assert r.returncode != 0
    assert "NOT_SET_EITHER is not set" in r.stderr and "NOT_SET " not in r.stderr


def test_template_placeholders_are_all_provided_by_the_entrypoint():
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", "\n".join(
        line for line in TEMPLATE.read_text().splitlines() if not line.lstrip().startswith("#"))))
    documented = set(re.findall(r"\b(JUNCTION_[A-Z_]+)\b", ENTRYPOINT.read_text()))
    assert names and names <= documented, names - documented
