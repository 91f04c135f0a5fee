# syntax=docker/dockerfile:1
#
# The sailstream image: one static binary, every subcommand (edge, bridge,
# core, web, up). compose.yaml builds it once and runs one service per
# subcommand; configure a container with SAILSTREAM_* environment variables
# (`docker run --rm sailstream:local <command> --help` lists them).
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t sailstream:local .

# --- 1. the map app: Leaflet bundled by esbuild into web/dist ----------------
# The output is plain JS/CSS/HTML, the same for every target platform, so
# this stage runs on the build machine's platform.
FROM --platform=$BUILDPLATFORM node:22-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/build.mjs ./
COPY web/src ./src
RUN npm run build

# --- 2. the binary: static (CGO off), cross-compiled for the target ---------
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# web/dist is excluded from the context (.dockerignore): the map comes from
# stage 1, so the image never embeds a stale local build.
COPY --from=web /src/web/dist ./web/dist
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/sailstream ./cmd/sailstream

# --- 3. the image: no shell, no package manager, not root -------------------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sailstream /usr/local/bin/sailstream
USER nonroot:nonroot
# web (map, /ws, REST, /metrics), and the metrics of edge, bridge, core and the sinks.
EXPOSE 8080 9461 9462 9463 9464 9465
ENTRYPOINT ["/usr/local/bin/sailstream"]
# Without a command the image explains itself; compose.yaml names one per service.
CMD ["--help"]
