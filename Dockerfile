# Dockerfile: builds the Junction router image (the `junction` binary plus the
# container entrypoint that renders its config). Multi-stage: a Rust builder, then
# a small Debian runtime running as an unprivileged user.
#
#   docker build -t junction:0.1.0 .
#   docker run --rm -p 8080:8080 -p 8081:8081 -p 8090:8090 junction:0.1.0   # one node
#   (its cluster gRPC stays on 127.0.0.1; a multi-node cluster needs a cluster secret,
#   see deploy/README.md)
#
# Ports: 8080 WebSocket (ws://HOST:8080/ws), 8081 RawSocket, 7001 cluster gRPC
# (Raft + node-to-node links), 8090 admin HTTP (/healthz, /readyz, /metrics).
# Used by docker-compose.yml and deploy/k8s/base/statefulset.yaml; see deploy/README.md.
# Needs BuildKit (the default builder since Docker Engine 23) for COPY --chmod.

# The builder and the runtime must share a Debian release (glibc).
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
ARG CARGO_CHEF_VERSION=0.1.78

# --- dependency cache (cargo-chef) ------------------------------------------
# cargo-chef turns the manifests into a recipe (Cargo.toml, Cargo.lock and a
# placeholder for every target, benches included) so the dependencies build in
# a layer that stays cached until the manifests change. protoc comes from the
# protoc-bin-vendored crate and C code (ring) from the image's gcc: no apt
# packages are needed.
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- builder ----------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin junction
# The whole context (.dockerignore keeps target/, .git/ and the non-Rust test
# suites out), so files the crate embeds or declares are always there.
COPY . .
RUN cargo build --release --locked --bin junction \
    && install -D -m 0755 target/release/junction /out/junction

# --- runtime ----------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# ca-certificates: for OTLP or peers over TLS. bash and awk (the entrypoint)
# are already in the slim image. Not version-pinned on purpose: it should follow
# Debian's security updates, and pinned versions vanish from the archive.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 junction \
    && useradd --system --uid 10001 --gid junction --no-create-home \
        --home-dir /var/lib/junction --shell /usr/sbin/nologin junction \
    && install -d -o junction -g junction -m 0750 /var/lib/junction \
    && install -d -o junction -g junction -m 0700 /var/lib/junction-cluster

COPY --from=builder /out/junction /usr/local/bin/junction
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/junction-entrypoint
COPY --chmod=0644 deploy/junction.toml.tmpl /etc/junction/junction.toml.tmpl

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/junction

EXPOSE 8080 8081 7001 8090

# /healthz on the admin port; the probe is bash's /dev/tcp (no curl in the image).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["junction-entrypoint", "healthcheck", "/healthz"]

# junction handles SIGTERM itself (GOODBYE to every client, then exit); the
# entrypoint execs it, so it is PID 1 and receives the signal.
STOPSIGNAL SIGTERM
ENTRYPOINT ["junction-entrypoint"]
CMD []
