# Shardkeeper images. Static Go binaries on a distroless, non-root base.
#   docker build --target operator -t ghcr.io/shardkeeper/operator:dev .
#   docker build --target bot -t ghcr.io/shardkeeper/bot:dev .
#   docker build --target gateway-proxy -t ghcr.io/shardkeeper/gateway-proxy:dev .
#   docker build --target discord-emulator -t ghcr.io/shardkeeper/discord-emulator:dev .
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
