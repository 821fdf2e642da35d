# The same image as `make image` (hack/image), for builds with a container engine:
#   docker build -t ghcr.io/hookline/hookline:0.1.0 .
# One image holds the three static binaries; the chart runs /manager or /dispatcher with `command`.
# `make image` needs no engine and is what CI builds and tests (hack/image/main_test.go); keep the
# two in step (binaries, flags, user, entrypoint, labels).

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY dispatcher/ dispatcher/
COPY internal/ internal/
ARG TARGETOS=linux TARGETARCH=amd64
RUN for c in manager dispatcher console hookline; do \
      GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags="-s -w" -o /out/$c ./cmd/$c || exit 1; \
    done

# distroless/static: Debian's CA bundle, /etc/passwd with nonroot (65532), /tmp; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="hookline" \
      org.opencontainers.image.description="Acrobat Sign-compatible webhooks for Kubernetes: /manager, /dispatcher, /console and the /hookline CLI" \
      org.opencontainers.image.source="https://github.com/hookline/hookline"
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/manager /out/dispatcher /out/console /out/hookline /
USER 65532:65532
ENTRYPOINT ["/manager"]
