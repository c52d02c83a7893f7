# syntax=docker/dockerfile:1
#
# One image for all five services; the container's command picks the service:
#   docker run orchestrator:local services/gateway/dist/main.js
# docker-compose.yml runs the whole system from it. See deploy/README.md.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1

# Manifests first, so `npm ci` is cached until a dependency changes. Every workspace the root
# package.json names must be here, or npm ci sees a workspace missing from the lockfile and fails
# (deploy/local/test/compose.test.ts checks it).
COPY package.json package-lock.json ./
COPY libs/bus/package.json libs/bus/
COPY libs/config/package.json libs/config/
COPY libs/contracts/package.json libs/contracts/
COPY libs/logging/package.json libs/logging/
COPY libs/nats-server/package.json libs/nats-server/
COPY libs/service/package.json libs/service/
COPY libs/testing/package.json libs/testing/
COPY proto/package.json proto/
COPY services/agent-hub/package.json services/agent-hub/
COPY services/cli/package.json services/cli/
COPY services/console/package.json services/console/
COPY services/event-bus/package.json services/event-bus/
COPY services/gateway/package.json services/gateway/
COPY services/orchestrator/package.json services/orchestrator/
COPY services/scheduler/package.json services/scheduler/
COPY libs/engine/package.json libs/engine/
COPY libs/runs/package.json libs/runs/
COPY deploy/local/package.json deploy/local/
COPY bench/package.json bench/
# --ignore-scripts: the only install script in the tree is protobufjs's, which the root package.json
# already refuses (allowScripts); the image's bundled npm may not know allowScripts.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund

COPY tsconfig.json tsconfig.base.json turbo.json ./
COPY libs libs
COPY proto proto
COPY services services
COPY deploy deploy
# The benchmarks are not part of the image.
RUN npx turbo run build --filter='!@orch/bench'

# Drop dev dependencies (typescript, turbo, vitest…); the workspace symlinks in node_modules/@orch
# stay, and resolve in the runtime image because it keeps the same layout under /app.
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# Only what runs: each workspace's package.json (for its "exports") and dist/, nothing from src/.
RUN set -eu; \
    for pkg in libs/* proto services/* deploy/local; do \
      mkdir -p "/out/$pkg"; \
      cp -a "$pkg/package.json" "$pkg/dist" "/out/$pkg/"; \
    done

# ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# Services bind loopback by default (safe on a laptop); in a container that would be unreachable.
ENV NODE_ENV=production HOST=0.0.0.0 ORCH_GRPC_HOST=0.0.0.0

COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /out/ ./
# Loaded at run time by @orch/proto (resolved as ../orchestrator.proto from proto/dist/).
COPY --from=build /app/proto/orchestrator.proto ./proto/orchestrator.proto

# Files stay root-owned and read-only to the process: the services write nothing to disk.
USER node
EXPOSE 8080 50051

# node is PID 1 and gets SIGTERM directly; every service handles it (clean stop within 10 s).
ENTRYPOINT ["node"]
