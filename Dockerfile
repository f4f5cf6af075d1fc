# syntax=docker/dockerfile:1
#
# The dbmazz worker image: the release build CI runs (`cargo build --release --locked`,
# the `build` target of the Makefile) on the pinned toolchain, copied into a small
# Debian runtime that runs as an unprivileged user.
#
#   docker build -t dbmazz:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run --stop-timeout 40 -e SOURCE_URL=... -e TABLES=... -e SINK_URL=... -e SINK_DATABASE=... dbmazz:0.1.0
#
# Shutdown: on SIGTERM dbmazz stops reading, loads what it read, checkpoints, confirms to
# PostgreSQL, releases its leases and exits 0, within DBMAZZ_SHUTDOWN_TIMEOUT_MS (25 s by
# default) plus the final flush of exported telemetry (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by
# default). The orchestrator's kill delay must be longer: `docker stop`'s default of 10 s
# is not, hence --stop-timeout 40 above (ECS: stopTimeout, Nomad: kill_timeout, Compose:
# stop_grace_period; the deployment files in this repository set them).

# The builder's Rust version is the one rust-toolchain.toml pins; Debian 12 as on the
# build machines, so the binary links against the same glibc and OpenSSL as the runtime.
FROM rust:1.95.0-slim-bookworm AS build

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
# Package versions are not pinned on purpose (DL3008): Debian 12 keeps only the current
# security-patched version of each package, so a pinned version stops installing.

WORKDIR /src
COPY . .

# The registry and target directories are build caches, not layers; the binary is copied
# out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin dbmazz \
 && install -D -m 0755 target/release/dbmazz /out/dbmazz

FROM debian:bookworm-slim AS runtime

# The version the image is labelled with; keep it equal to Cargo.toml's (a test checks
# the default), override it for other builds.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="dbmazz" \
      org.opencontainers.image.description="Change data capture from PostgreSQL into StarRocks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/dbmazz/dbmazz" \
      org.opencontainers.image.licenses="Apache-2.0"

# libssl3: libcurl (Stream Load) uses the system OpenSSL; ca-certificates: TLS to
# PostgreSQL (sslrootcert=system), StarRocks over https and the OTLP collector.
# Versions are not pinned, for the reason given in the build stage (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dbmazz \
 && useradd --system --uid 10001 --gid dbmazz --home-dir /var/lib/dbmazz --create-home \
      --shell /usr/sbin/nologin dbmazz

COPY --from=build /out/dbmazz /usr/local/bin/dbmazz
# Fails the build when a shared library the binary needs is missing from this stage.
RUN ["/usr/local/bin/dbmazz", "--version"]

# Inside a container the control plane and the metrics listen on every interface so that
# the orchestrator's probes and Prometheus reach them; control calls still need
# DBMAZZ_CONTROL_TOKEN. Logs go to stderr as JSON lines for log pipelines.
ENV DBMAZZ_GRPC_ADDR=0.0.0.0:50051 \
    DBMAZZ_METRICS_ADDR=0.0.0.0:9187 \
    DBMAZZ_LOG_FORMAT=json
EXPOSE 50051 9187

USER 10001:10001
WORKDIR /var/lib/dbmazz

STOPSIGNAL SIGTERM
# SERVING while every pipeline streams (or is paused on purpose), and while the worker
# waits for a lease; the start period covers setup (publication, slot, StarRocks checks).
HEALTHCHECK --interval=15s --timeout=10s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/dbmazz", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/dbmazz"]
CMD ["run"]
