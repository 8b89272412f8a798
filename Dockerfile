# syntax=docker/dockerfile:1
# secretsync container image: a release build on the Rust image, copied onto Debian slim with
# CA certificates. One image serves the GitHub Action and scheduled jobs:
#   - as a GitHub Action it runs as the default user (root) in the runner's working directory,
#     as GitHub requires of Docker actions (no USER, no WORKDIR here);
#   - scheduled jobs set the non-root user where they run: Kubernetes `runAsUser: 1001`
#     (`runAsNonRoot: true`), `docker run --user 1001:1001` — the `secretsync` account below.
# Build with
#   docker build --build-arg SECRETSYNC_BUILD_COMMIT=$(git rev-parse --short=12 HEAD) \
#                --build-arg SECRETSYNC_BUILD_DATE=$(git log -1 --format=%cs) -t secretsync .
#
# Base images are pinned by version here. `scripts/pin-images` resolves each to its digest
# (`tag@sha256:…`) and rewrites the two defaults below; it needs access to Docker Hub.

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
ARG SECRETSYNC_BUILD_COMMIT=unknown
ARG SECRETSYNC_BUILD_DATE=unknown
ENV SECRETSYNC_BUILD_COMMIT=${SECRETSYNC_BUILD_COMMIT} \
    SECRETSYNC_BUILD_DATE=${SECRETSYNC_BUILD_DATE} \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin secretsync \
    && install -m 0755 target/release/secretsync /usr/local/bin/secretsync

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG SECRETSYNC_BUILD_COMMIT=unknown
ARG SECRETSYNC_BUILD_DATE=unknown
LABEL org.opencontainers.image.title="secretsync" \
      org.opencontainers.image.description="Synchronise secrets across HashiCorp Vault, AWS Secrets Manager and local stores from one YAML pipeline" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${SECRETSYNC_BUILD_COMMIT}" \
      org.opencontainers.image.created="${SECRETSYNC_BUILD_DATE}" \
      org.opencontainers.image.source="https://github.com/secretsync/secretsync" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
# CA certificates come from the build image (which has them for crates.io), so the runtime
# installs nothing. uid/gid 1001 is the account scheduled jobs run as.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /usr/local/bin/secretsync /usr/local/bin/secretsync
COPY --chmod=0755 entrypoint.sh /usr/local/bin/entrypoint.sh
RUN groupadd --gid 1001 secretsync \
    && useradd --uid 1001 --gid 1001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin secretsync
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# `entrypoint.sh github-action` is the Action (action.yml's runs.args); anything else is passed
# to secretsync unchanged; with no arguments it prints the help.
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["--help"]
