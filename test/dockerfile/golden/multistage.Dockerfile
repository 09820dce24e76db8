ARG GO_VERSION=1.22
ARG BASE=debian:bookworm-slim
FROM golang:${GO_VERSION} AS Builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,source=go.sum,target=go.sum \
    go build -o /out/app ./cmd/app

FROM builder AS test
RUN go test ./...

FROM ${BASE} AS runtime
COPY --from=builder /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]

FROM scratch AS unused
COPY --from=0 /out/app /app
