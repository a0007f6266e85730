# Shardkeeper images. Static Go binaries on a distroless, non-root base.
#   docker build --target operator -t ghcr.io/shardkeeper/operator:dev .
#   docker build --target bot -t ghcr.io/shardkeeper/bot:dev .
#   docker build --target gateway-proxy -t ghcr.io/shardkeeper/gateway-proxy:dev .
#   docker build --target discord-emulator -t ghcr.io/shardkeeper/discord-emulator:dev .
#   docker build --target python-runtime -t ghcr.io/shardkeeper/python-runtime:dev .
#   docker build --target node-runtime -t ghcr.io/shardkeeper/node-runtime:dev .
#   docker build --target python-bot -t ghcr.io/shardkeeper/python-bot:dev .
#   docker build --target node-bot -t ghcr.io/shardkeeper/node-bot:dev .
# Without Docker, `make images` (hack/images) builds the same images from the same
# flags: same paths, user, entrypoint, working directory and labels.
# Reproducible binaries: -trimpath, no build IDs or VCS stamps. For reproducible images,
# pin the base images by digest (image@sha256:...).

ARG GO_VERSION=1.26

# The build stage runs on the build machine's platform and cross-compiles for the target.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ARG TARGETOS=linux
ARG TARGETARCH
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOOS=${TARGETOS} GOARCH=${TARGETARCH}
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY controllers/ controllers/
COPY cmd/ cmd/
COPY internal/ internal/
COPY botruntime/ botruntime/
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -buildid= -X main.version=${VERSION}" -o /out/operator ./cmd/operator && \
    go build -trimpath -ldflags "-s -w -buildid= -X main.version=${VERSION}" -o /out/bot ./cmd/bot && \
    go build -trimpath -ldflags "-s -w -buildid= -X main.version=${VERSION}" -o /out/gateway-proxy ./cmd/gateway-proxy && \
    go build -trimpath -ldflags "-s -w -buildid= -X main.version=${VERSION}" -o /out/discord-emulator ./cmd/discord-emulator

FROM gcr.io/distroless/static-debian12:nonroot AS operator
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/shardkeeper/shardkeeper" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="shardkeeper-operator"
COPY --from=build /out/operator /operator
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/operator"]

FROM gcr.io/distroless/static-debian12:nonroot AS bot
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/shardkeeper/shardkeeper" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="shardkeeper-bot"
COPY --from=build /out/bot /bot
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/bot"]

FROM gcr.io/distroless/static-debian12:nonroot AS gateway-proxy
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/shardkeeper/shardkeeper" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="shardkeeper-gateway-proxy"
COPY --from=build /out/gateway-proxy /gateway-proxy
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/gateway-proxy"]

FROM gcr.io/distroless/static-debian12:nonroot AS discord-emulator
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/shardkeeper/shardkeeper" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="shardkeeper-discord-emulator"
COPY --from=build /out/discord-emulator /discord-emulator
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/discord-emulator"]

# Runtimes for bots in other languages, behind the gateway proxy (docs/gateway-proxy.md):
# Debian's packages, as `make images` unpacks them (same packages, user, entrypoint,
# working directory and environment; make images leaves out apt and what it alone needs).
FROM debian:bookworm-slim AS python-runtime
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/shardkeeper/shardkeeper" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="shardkeeper-python-runtime"
RUN apt-get update && \
    apt-get install -y --no-install-recommends python3 python3-discord python3-aiohttp ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home nonroot
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /app
ENTRYPOINT ["/usr/bin/python3"]

FROM debian:bookworm-slim AS node-runtime
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/shardkeeper/shardkeeper" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="shardkeeper-node-runtime"
RUN apt-get update && \
    apt-get install -y --no-install-recommends nodejs ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home nonroot
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /app
ENTRYPOINT ["/usr/bin/node"]

FROM python-runtime AS python-bot
LABEL org.opencontainers.image.title="shardkeeper-python-bot"
COPY examples/python-bot/ /app/
CMD ["/app/bot.py"]

# The node bot's dependencies, exactly as its lock file says, without install scripts.
FROM debian:bookworm-slim AS node-deps
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm ca-certificates
WORKDIR /app
COPY examples/node-bot/package.json examples/node-bot/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node-runtime AS node-bot
LABEL org.opencontainers.image.title="shardkeeper-node-bot"
COPY --from=node-deps /app/node_modules /app/node_modules
COPY examples/node-bot/ /app/
CMD ["/app/bot.js"]
