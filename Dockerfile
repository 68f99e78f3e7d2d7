# Development image: compiles mount-monitor from this checkout, then ends in the same scratch stage
# as Dockerfile.release (same user, port, healthcheck, entrypoint and labels; a unit test in
# xtask/src/docker/dockerfile.rs keeps them equal). Releases use `cargo xtask docker --release`,
# which packs the binaries `cargo xtask dist` already built and verified.
#   cargo xtask docker                         # this file, for the engine's own platform
#   docker build -t mount-monitor:dev .        # the same by hand (BuildKit or podman)
#   docker buildx build --platform linux/arm64 -t mount-monitor:dev-arm64 --load .
# Other platforms are cross-compiled on the build machine by `cargo xtask dist`, the same
# static musl build as a release (no emulated compiler).
# Fully qualified: podman resolves no short names without unqualified-search registries.
FROM --platform=$BUILDPLATFORM docker.io/library/rust:1-alpine AS build
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# ring (the TLS crypto of the watchdog's client) compiles C: musl-dev's headers for this
# machine's own musl target, clang for the other one (see xtask/src/targets.rs). Alpine keeps
# only the current version of each package, so a pinned version would stop building.
# hadolint ignore=DL3018
RUN apk add --no-cache clang musl-dev
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo xtask dist --arch "$TARGETARCH" --version "$VERSION" --out /out

FROM scratch

ARG TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/mount-monitor/mount-monitor

LABEL org.opencontainers.image.title="mount-monitor" \
      org.opencontainers.image.description="Mount-health sidecar: says on :8080 whether each mount is really there and usable" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"

COPY --from=build --chmod=0755 /out/mount-monitor-linux-${TARGETARCH} /mount-monitor

EXPOSE 8080
USER 65534:65534
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 CMD ["/mount-monitor", "healthcheck"]
ENTRYPOINT ["/mount-monitor"]
