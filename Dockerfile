# Shardkeeper images. Static Go binaries on a distroless, non-root base.
#   docker build --target operator -t shardkeeper/operator:dev .
#   docker build --target bot -t shardkeeper/bot:dev .
# Reproducible: pinned base images, -trimpath, no build IDs or VCS stamps.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY controllers/ controllers/
COPY cmd/ cmd/
COPY internal/ internal/
COPY botruntime/ botruntime/
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -buildid= -X main.version=${VERSION}" -o /out/operator ./cmd/operator && \
    go build -trimpath -ldflags "-s -w -buildid=" -o /out/bot ./cmd/bot

FROM gcr.io/distroless/static-debian12:nonroot AS operator
COPY --from=build /out/operator /operator
USER 65532:65532
ENTRYPOINT ["/operator"]

FROM gcr.io/distroless/static-debian12:nonroot AS bot
COPY --from=build /out/bot /bot
USER 65532:65532
ENTRYPOINT ["/bot"]
