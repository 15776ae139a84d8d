"""The Dockerfile and its build context, without a Docker engine: stages, user,
ports, healthcheck and entrypoint agree with the manifests; every file the
build copies exists and is not excluded by .dockerignore; and the builder's
cargo command compiles from exactly the files the Dockerfile copies."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import tomllib

import pytest

from support import (
    DOCKERFILE,
    ROOT,
    compose_junction_services,
    container,
    dockerfile,
    final_stage,
    image_copies,
    image_entrypoint_cmd,
    image_user,
    pod_env,
    run,
)


def instructions(name: str) -> list[dict]:
    return [i for i in dockerfile().structure if i["instruction"] == name]


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(rel: str) -> bool:
    """Whether .dockerignore drops a context path (enough of Docker's matching for our patterns)."""
    out = False
    for pat in dockerignore_patterns():
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            out = not neg
    return out


def builder_copies() -> list[str]:
    """Context paths copied by any stage (COPY without --from)."""
    out = []
    for ins in instructions("COPY"):
        if "--from=" in ins["value"]:
            continue
        parts = [p for p in ins["value"].split() if not p.startswith("--")]
        out += parts[:-1]
    return out


def test_multi_stage_build_with_a_small_runtime():
    froms = [i["value"].split() for i in instructions("FROM")]
    assert len(froms) >= 2
    args = {i["value"].split("=")[0]: i["value"].split("=")[1] for i in instructions("ARG") if "=" in i["value"]}
    builder, runtime = froms[0][0], froms[-1][0]
    assert builder.startswith("rust:") and "slim" in builder
    assert runtime.startswith(("debian:", "gcr.io/distroless/cc"))
    # Builder and runtime share the Debian release (glibc).
    assert "${DEBIAN_RELEASE}" in builder and "${DEBIAN_RELEASE}" in runtime
    rust_version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["rust-version"]
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(args["RUST_VERSION"]) >= as_tuple(rust_version)
    runs = " ".join(i["value"] for i in instructions("RUN"))
    assert "cargo build --release --locked --bin junction" in runs


def test_runtime_user_is_unprivileged_and_matches_the_pod():
    user = image_user().split(":")
    assert user[0].isdigit() and user[0] != "0", "use a numeric non-root UID (runAsNonRoot can check it)"
    pod = dict(container().get("securityContext", {}))
    assert str(pod.get("runAsUser", user[0])) == user[0]


def test_exposed_ports_are_the_containers_ports():
    exposed = {int(p) for i in instructions("EXPOSE") for p in i["value"].split()}
    assert exposed == {8080, 8081, 7001, 8090}
    assert exposed == {p["containerPort"] for p in container()["ports"]}


def test_healthcheck_probes_the_admin_port():
    hc = [i["value"] for i in final_stage() if i["instruction"] == "HEALTHCHECK"]
    assert len(hc) == 1
    assert re.search(r'CMD \["junction-entrypoint", "healthcheck", "/healthz"\]', hc[0])


def test_entrypoint_and_template_land_where_the_manifests_expect_them():
    entrypoint, cmd = image_entrypoint_cmd()
    copies = image_copies()
    assert entrypoint == ["junction-entrypoint"] and cmd == []
    assert copies["/usr/local/bin/junction-entrypoint"] == "deploy/entrypoint.sh"
    assert copies[pod_env(0)["JUNCTION_CONFIG_TEMPLATE"]] == "deploy/junction.toml.tmpl"
    # Neither the StatefulSet nor compose replaces the entrypoint.
    assert "command" not in container()
    for svc in compose_junction_services().values():
        assert svc.get("entrypoint") is None and svc.get("command") is None
    assert os.access(ROOT / "deploy" / "entrypoint.sh", os.X_OK)


def context_files() -> list[str]:
    """Every file of the build context: the repository minus .dockerignore."""
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        rel = lambda n: n if rel_dir == "." else f"{rel_dir}/{n}"  # noqa: E731
        dirnames[:] = [d for d in dirnames if not ignored(rel(d))]
        out += [rel(f) for f in filenames if not ignored(rel(f)) and os.path.isfile(os.path.join(dirpath, f))]
    return out


def test_build_context_has_every_copied_file():
    for src in builder_copies():
        assert (ROOT / src).exists(), f"COPY {src}: missing from the build context"
        assert src == "." or not ignored(src), f"COPY {src}: excluded by .dockerignore"
    assert ignored("target") and ignored("target/debug/junction") and ignored(".git")
    files = set(context_files())
    for needed in ("Cargo.toml", "Cargo.lock", "build.rs", "src/main.rs", "deploy/entrypoint.sh"):
        assert needed in files, f"{needed} is not in the build context"
    assert not any(f.startswith(("target/", "tests/python/")) for f in files)


def test_sources_embed_no_files_outside_the_context():
    files = set(context_files())
    for rs in (ROOT / "src").rglob("*.rs"):
        for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', rs.read_text()):
            rel = str((rs.parent / m.group(1)).resolve().relative_to(ROOT))
            assert rel in files, f"{rs.relative_to(ROOT)} embeds {rel}, which is not in the build context"


def test_builder_compiles_from_the_build_context():
    """The builder stage's cargo build, run on a copy of exactly the build context
    (cargo check, offline, its own target dir): catches a file the build needs that
    .dockerignore drops, and a stale Cargo.lock (--locked)."""
    if os.environ.get("JUNCTION_DEPLOY_SKIP_BUILD_CHECK") == "1":
        pytest.skip("JUNCTION_DEPLOY_SKIP_BUILD_CHECK=1")
    cargo = shutil.which("cargo")
    if not cargo:
        pytest.skip("no cargo on PATH")
    # A fixed place (inside target/, so outside the context): unchanged files keep
    # their mtimes, and cargo re-checks only what changed since the last run.
    ctx = ROOT / "target" / "deploy-context"
    shutil.rmtree(ctx, ignore_errors=True)
    for rel in context_files():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, ctx / rel)
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target" / "deploy-build-check"))
    cmd = [cargo, "check", "--locked", "--offline", "--release", "--bin", "junction"]
    r = run(cmd, cwd=ctx, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]


def test_dockerfile_starts_with_a_comment():
    assert DOCKERFILE.read_text().startswith("#")
    assert (ROOT / ".dockerignore").read_text().startswith("#")
