# syntax=docker/dockerfile:1

# The zulip-bridge image: the static `bridge` binary on distroless, run as a
# numeric non-root user. The default target is the bridge; `--target zulipsim`
# builds the Zulip simulator for docker compose and demos.
#
#   docker build --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) -t zulip-bridge:v1.2.3 .
#   docker build --target zulipsim -t zulip-bridge-zulipsim .
#
# cmd/bridge/deploy_test.go parses this file and runs its `go build` line.

# The builder runs on the build machine's platform and cross-compiles for
# the target's (TARGETOS/TARGETARCH): no emulation for multi-arch builds.
FROM --platform=$BUILDPLATFORM golang:1.26.8 AS build
WORKDIR /src
# The toolchain of the image, never a download (go.mod may name a newer one).
ENV GOTOOLCHAIN=local
# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bridge ./cmd/bridge
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/zulipsim ./cmd/zulipsim
# The state directory, created here because the final image has no shell;
# copied with the runtime user as owner, so that a fresh named volume
# mounted on it is writable by the bridge.
RUN mkdir -m 0750 /out/state

# The simulator: `docker compose` and demos use it as a Zulip server.
FROM gcr.io/distroless/static-debian12:nonroot AS zulipsim
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="zulipsim" \
      org.opencontainers.image.description="Zulip-compatible server simulator generating realistic events, for trying zulip-bridge" \
      org.opencontainers.image.source="https://github.com/zulip-bridge/zulip-bridge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="NOASSERTION"
COPY --from=build /out/zulipsim /zulipsim
USER 65532:65532
ENV ZULIPSIM_ADDR=0.0.0.0:9991
EXPOSE 9991
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s CMD ["/zulipsim", "-probe"]
ENTRYPOINT ["/zulipsim"]

# The bridge (the default target: last).
FROM gcr.io/distroless/static-debian12:nonroot AS bridge
ARG VERSION=dev
ARG REVISION=unknown
# licenses: the project has not declared a license yet (SPDX NOASSERTION).
LABEL org.opencontainers.image.title="zulip-bridge" \
      org.opencontainers.image.description="Publishes every event of a Zulip server to NATS JetStream or Kafka, exactly once" \
      org.opencontainers.image.source="https://github.com/zulip-bridge/zulip-bridge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="NOASSERTION"
COPY --from=build /out/bridge /bridge
COPY --from=build --chown=65532:65532 /out/state /var/lib/zulip-bridge
USER 65532:65532
# The checkpoint and the embedded NATS server's storage live in the state
# directory: mount a volume there. The embedded NATS server (used when
# BRIDGE_NATS_URL is empty) listens on all interfaces of the container, so
# that consumers can reach it through the published port 4222.
ENV BRIDGE_STATE_DIR=/var/lib/zulip-bridge \
    BRIDGE_HTTP_ADDR=:8080 \
    BRIDGE_NATS_EMBEDDED_ADDR=0.0.0.0:4222
EXPOSE 8080 4222
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["/bridge", "probe"]
ENTRYPOINT ["/bridge"]
CMD ["run"]
