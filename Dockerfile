# syntax=docker/dockerfile:1
# serin's controller image: a static binary on distroless, non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api api
COPY admission admission
COPY analysis analysis
COPY cmd cmd
COPY rollout rollout
COPY xds xds
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/serin-dev/serin/cmd/serin/app.Version=${VERSION}" \
      -o /out/serin ./cmd/serin

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/serin /usr/local/bin/serin
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/serin"]
CMD ["controller"]
