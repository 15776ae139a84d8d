"""Kubernetes manifests (deploy/k8s): schema validation with kubernetes-validate
--strict, and the cross-object facts no schema checks (selectors, names, ports,
mounts, probes on the admin port, quorum-safe disruption budget)."""

from __future__ import annotations

import re
import shutil

import pytest

from support import (
    K8S,
    TEMPLATE,
    configmap_template,
    container,
    container_port,
    image_user,
    k8s_manifests,
    k8s_objects,
    k8s_one,
    kustomization,
    pod_env,
    render,
    run,
    statefulset,
    tool,
)


def kubernetes_validate(paths: list[str]) -> str:
    """Run kubernetes-validate --strict; any WARN (e.g. an unknown apiVersion) or ERROR fails."""
    r = run([tool("kubernetes-validate"), "--strict", *paths])
    out = r.stdout + r.stderr
    bad = [line for line in out.splitlines() if re.match(r"^(WARN|ERROR)\b", line)]
    assert r.returncode == 0 and not bad, f"kubernetes-validate --strict failed:\n{out}"
    return out


def test_every_manifest_passes_kubernetes_validate_strict():
    out = kubernetes_validate([str(p) for p in k8s_manifests()])
    passed = re.findall(r"^INFO .* passed for resource (\S+)", out, re.M)
    assert len(passed) == len(k8s_objects()), out


def test_kubernetes_validate_rejects_unknown_fields_and_kinds(tmp_path):
    # The validator itself must catch what --strict promises (guards against a
    # silently lenient version).
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIp: None}\n---\n"
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: y}\n"
    )
    r = run([tool("kubernetes-validate"), "--strict", str(bad)])
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "clusterIp" in out, out
    assert re.search(r"^WARN .*Widget", out, re.M), out


def test_kustomization_lists_every_manifest():
    listed = sorted(kustomization()["resources"])
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert listed == present
    for name in present:
        assert (K8S / name).read_text().startswith("#"), f"{name} should open with a comment"


def test_kustomize_build_validates(tmp_path):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed: `kubectl kustomize` not checked (the plain manifests are)")
    r = run([kubectl, "kustomize", str(K8S)])
    assert r.returncode == 0, r.stderr
    built = tmp_path / "kustomized.yaml"
    built.write_text(r.stdout)
    kubernetes_validate([str(built)])


def test_configmap_template_is_the_repository_template():
    assert configmap_template() == TEMPLATE.read_text(), (
        "deploy/k8s/base/configmap.yaml's junction.toml.tmpl differs from deploy/junction.toml.tmpl"
    )


def test_selectors_match_the_pods():
    sts = statefulset()
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for (kind, name), obj in k8s_objects().items():
        if kind == "Service":
            assert obj["spec"]["selector"].items() <= labels.items(), f"Service {name} selects no pod"
        if kind == "PodDisruptionBudget":
            assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
    namespaces = {o["metadata"].get("namespace") for (k, _), o in k8s_objects().items() if k != "Namespace"}
    assert namespaces == {k8s_one("Namespace")["metadata"]["name"]} == {kustomization()["namespace"]}


def test_headless_service_gives_pods_stable_dns_for_peer_discovery():
    sts = statefulset()
    headless = k8s_one("Service", sts["spec"]["serviceName"])
    spec = headless["spec"]
    assert spec["clusterIP"] == "None"
    # Joining needs the peers reachable before they are ready.
    assert spec["publishNotReadyAddresses"] is True
    grpc = {p["name"]: p for p in spec["ports"]}["grpc"]
    assert grpc["port"] == container_port("grpc") == int(pod_env(0)["JUNCTION_GRPC_PORT"])
    assert pod_env(0)["JUNCTION_HEADLESS_SERVICE"] == headless["metadata"]["name"]
    assert sts["spec"]["podManagementPolicy"] == "Parallel"


def test_client_service_exposes_websocket_and_rawsocket():
    client = [o for (k, n), o in k8s_objects().items() if k == "Service" and o["spec"].get("clusterIP") != "None"]
    assert len(client) == 1
    ports = {p["name"]: p for p in client[0]["spec"]["ports"]}
    assert set(ports) == {"ws", "rawsocket"}
    assert ports["ws"]["port"] == container_port("ws") == 8080
    assert ports["rawsocket"]["port"] == container_port("rawsocket") == 8081
    for p in ports.values():
        assert p["targetPort"] in {cp["name"] for cp in container()["ports"]}


def test_probes_use_the_admin_port():
    c = container()
    admin = container_port("admin")
    assert admin == 8090
    assert render(pod_env(0))[1]["admin"]["listen"] == f"0.0.0.0:{admin}"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ("admin", admin), probe
    annotations = statefulset()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(admin)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_pods_run_unprivileged_with_resources():
    pod = statefulset()["spec"]["template"]["spec"]
    c = container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image_user().split(":")[0] != "0"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= c["resources"][kind].keys(), kind


def test_volumes_back_the_entrypoint_paths():
    """Data dir on the claim template, template from the ConfigMap, rendered file writable."""
    sts = statefulset()
    env = pod_env(0)
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    assert mounts[env["JUNCTION_DATA_DIR"]]["name"] in claims
    configmap_template()  # asserts the mount and key exist
    rendered_dir = env["JUNCTION_RENDERED_CONFIG"].rsplit("/", 1)[0]
    assert rendered_dir in mounts and not mounts[rendered_dir].get("readOnly"), (
        "the rendered config must land on a writable volume (the root filesystem is read-only)"
    )
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    for m in mounts.values():
        assert m["name"] in volumes or m["name"] in claims, m


def test_disruption_budget_and_grace_keep_the_cluster_safe():
    voters = int(pod_env(0)["JUNCTION_VOTERS"])
    pdb = k8s_one("PodDisruptionBudget")
    max_unavailable = pdb["spec"]["maxUnavailable"]
    assert max_unavailable == 1
    assert voters - max_unavailable >= voters // 2 + 1, "a drain would cost the Raft quorum"
    replicas = statefulset()["spec"]["replicas"]
    assert replicas >= voters
    # SIGTERM drain must finish before the kubelet's SIGKILL.
    grace_ms = render(pod_env(0))[1]["limits"]["shutdown_grace_ms"]
    pre_stop = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    period = statefulset()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert pre_stop + grace_ms / 1000 + 5 <= period


def test_admin_token_comes_from_the_junction_admin_secret():
    """The admin API's token is mounted from Secret junction-admin (created by the
    operator, never shipped; optional, so the pods start as shipped with the API
    closed); the probes and Prometheus' scrape need none."""
    env = pod_env(0)
    token_file = env["JUNCTION_ADMIN_TOKEN_FILE"]
    mount_dir, key = token_file.rsplit("/", 1)
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    assert mounts[mount_dir].get("readOnly") is True
    volumes = {v["name"]: v for v in statefulset()["spec"]["template"]["spec"]["volumes"]}
    secret = volumes[mounts[mount_dir]["name"]]["secret"]
    assert secret["secretName"] == "junction-admin" and secret.get("optional") is True, secret
    assert [i["path"] for i in secret["items"]] == [key]
    assert not [n for (k, n) in k8s_objects() if k == "Secret"], "a shipped Secret would be a known token"
    admin = render(env)[1]["admin"]
    assert admin["metrics_public"] is True and "token_file" not in admin, admin


def secret_volume_of_the_pods() -> tuple[dict, dict]:
    """The StatefulSet's volume of the cluster Secret (the one not holding the admin
    token) and the junction container's mount of it."""
    sts = statefulset()
    secret_volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]
                      if "secret" in v and v["secret"]["secretName"] != "junction-admin"}
    mounts = [m for m in container()["volumeMounts"] if m["name"] in secret_volumes]
    assert len(mounts) == 1, "the junction container should mount exactly one cluster Secret"
    return secret_volumes[mounts[0]["name"]], mounts[0]


def test_every_junction_pod_mounts_the_cluster_secret_and_points_junction_at_it():
    volume, mount = secret_volume_of_the_pods()
    assert mount.get("readOnly") is True
    assert volume["secret"].get("optional") is not True, "a pod must not start without the secret"
    items = {i["key"]: i["path"] for i in volume["secret"]["items"]}
    env = pod_env(0)
    secret_file = env["JUNCTION_CLUSTER_SECRET_FILE"]
    directory, filename = secret_file.rsplit("/", 1)
    assert directory == mount["mountPath"] and filename in items.values(), (secret_file, mount, items)
    # The group (fsGroup) can read it, nobody else.
    mode = volume["secret"]["defaultMode"]
    assert mode & 0o040 and not mode & 0o007, oct(mode)
    assert statefulset()["spec"]["template"]["spec"]["securityContext"]["fsGroup"] is not None
    # The template does not name another secret that would take precedence.
    assert "secret" not in render(pod_env(0))[1]["cluster"]


def test_the_cluster_secret_is_generated_in_the_cluster_not_shipped():
    volume, _ = secret_volume_of_the_pods()
    name = volume["secret"]["secretName"]
    key = volume["secret"]["items"][0]["key"]
    shipped = [o for (k, n), o in k8s_objects().items() if k == "Secret"]
    assert not any(o.get("data") or o.get("stringData") for o in shipped), "a secret value is shipped"
    job = k8s_one("Job", "junction-cluster-secret")
    spec = job["spec"]["template"]["spec"]
    create = spec["containers"][0]
    assert create["args"][:4] == ["create", "secret", "generic", name], create["args"]
    from_file = next(a for a in create["args"] if a.startswith("--from-file="))
    assert from_file.startswith(f"--from-file={key}="), from_file
    generate = " ".join(spec["initContainers"][0]["command"])
    assert "/dev/urandom" in generate and from_file.split("=", 2)[2] in generate, generate
    # The Job may create Secrets, through its own account, and nothing else.
    account = spec["serviceAccountName"]
    binding = k8s_one("RoleBinding", account)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "junction"}]
    role = k8s_one("Role", binding["roleRef"]["name"])
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    assert statefulset()["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_network_policy_lets_only_junction_pods_reach_the_cluster_port():
    labels = statefulset()["spec"]["template"]["metadata"]["labels"]
    policy = k8s_one("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    grpc_rules = [r for r in policy["spec"]["ingress"] if any(p["port"] in ("grpc", 7001) for p in r["ports"])]
    assert len(grpc_rules) == 1
    sources = grpc_rules[0]["from"]
    assert sources and all(s.keys() == {"podSelector"} for s in sources), sources
    assert all(s["podSelector"]["matchLabels"].items() <= labels.items() for s in sources)
