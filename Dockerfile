# coco-secure-access: the mTLS sidecar as one bundled file on Node.js 24.
#
#   make docker-build     (or: docker build --build-arg VERSION=0.1.0 -t coco-secure-access .)
#
# Needs BuildKit (Docker 23+ by default, or buildah/podman) for RUN --mount and $BUILDPLATFORM.
#
# `make test` cannot run a container engine, so test/image/ checks this file instead: its structure and
# a hadolint-like rule set (scripts/lint-dockerfile.ts), and it re-creates the runtime stage as a process
# (only the bundle, read-only, no node_modules, uid 65532, this ENTRYPOINT) and talks mTLS to it.

# ---------------------------------------------------------------------------------------------------
# Build: `npm ci` from package-lock.json, then the esbuild bundle (what `make build` runs).
# Debian 12 "bookworm" with glibc, the same Debian release as the runtime base. The bundle is plain
# JavaScript, so it is built on the builder's own platform even when the image targets another one.
FROM --platform=$BUILDPLATFORM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# esbuild's install script is only a start-up optimisation of its CLI; the build uses its JS API.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
# Only what the bundle is built from: the build script and its options, tsconfig.json (esbuild reads
# it), src/ (package.json is inlined for the version).
COPY tsconfig.json ./
COPY scripts/build.ts scripts/bundle-options.ts ./scripts/
COPY src/ ./src/
RUN node scripts/build.ts

# ---------------------------------------------------------------------------------------------------
# Runtime: distroless Node.js 24 (Debian 12, glibc, the same Debian release as the build stage).
# It holds node, glibc, CA certificates and tzdata, and nothing else: no shell, no package manager,
# no coreutils, so a compromised process finds no tools. Its entrypoint is /nodejs/bin/node.
# dist/main.js inlines every dependency: it imports Node built-ins only and needs no node_modules at
# run time (test/scripts/bundle-options.test.ts). The source map is not shipped.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="coco-secure-access" \
      org.opencontainers.image.description="mTLS secure-access sidecar for Confidential Containers pods" \
      org.opencontainers.image.source="https://github.com/confidential-devhub/coco-secure-access" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Copied before WORKDIR on purpose: COPY creates /app and /app/dist owned by root, while a WORKDIR
# that has to create /app would give it to the base image's user (65532, BuildKit). The process can
# read its code and write nothing; with readOnlyRootFilesystem it needs no writable volume at all.
COPY --from=build /src/dist/main.js /app/dist/main.js
WORKDIR /app
EXPOSE 8443
# Numeric, so that Kubernetes' runAsNonRoot can verify it (distroless "nonroot" is 65532:65532).
USER 65532:65532
# The V8 flags keep a 128 MiB container's memory in bounds: under bulk transfers they cut the peak
# anonymous memory from 151-179 MiB to 60 MiB, with the sidecar's own GC pacing (docs/PERFORMANCE.md).
# Keep them together.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=2", "--max-old-space-size=64", "/app/dist/main.js"]
# Nothing is appended by default; configuration is the environment only (see README).
CMD []
