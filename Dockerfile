# Kuvert's image. Kuvert runs its TypeScript sources directly (Node's type stripping), so
# the service has no build step: install the runtime dependencies, copy the sources, run as a
# user of its own. Only the browser console is built (first stage). docker-compose.yml builds it; deploy/README.md explains the whole stack.
# The staff console is built with Vite in a stage of its own (it needs the dev dependencies);
# only its static output (web/console/dist) goes into the image.
FROM node:22-bookworm-slim AS console
WORKDIR /build
COPY package.json package-lock.json ./
COPY packages/test-homeserver/package.json ./packages/test-homeserver/
COPY tools/ ./tools/
RUN npm ci --no-audit --no-fund
COPY web/ ./web/
RUN npm run build:web

FROM node:22-bookworm-slim

# KUVERT_CONFIG: the configuration every `kuvert` command uses (docker-compose.yml mounts it
# there), so `docker compose run --rm kuvert org list` needs no --config.
# KUVERT_COMMIT: the commit the image was built from (`docker build --build-arg
# KUVERT_COMMIT=$(git rev-parse HEAD)`), which `kuvert --version` and GET /version report.
# MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_: glibc's allocator keeps the memory of freed
# Buffers in per-thread arenas, and raises its threshold for returning large blocks to the
# system with each one freed; with these two, Kuvert's resident memory after 1,000 documents
# is about 20 MiB smaller, at no measurable cost (bench/README.md).
ARG KUVERT_COMMIT=unknown
ENV NODE_ENV=production \
    KUVERT_CONFIG=/data/config.yaml \
    KUVERT_COMMIT=$KUVERT_COMMIT \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072

WORKDIR /app

# Dependencies first, so that a source change does not reinstall them. package.json's
# "overrides" replaces @matrix-org/matrix-sdk-crypto-nodejs with ./tools/crypto-unavailable
# (the bot SDK names it, Kuvert's end-to-end encryption uses the WebAssembly build instead, and
# the real package downloads a native binary at install time), so tools/ must be there before
# `npm ci`. The lock names the workspace
# packages/test-homeserver (the tests' homeserver, not in the image): its package.json comes
# in so that `npm ci` finds the tree the lock describes; the folder holds nothing else.
COPY package.json package-lock.json ./
COPY packages/test-homeserver/package.json ./packages/test-homeserver/
COPY tools/ ./tools/
RUN npm ci --omit=dev --no-audit --no-fund \
    && npm cache clean --force

# The application: appservice/, bin/, web/ and config.sample.yaml. .dockerignore admits only
# these (and the files above), so this copies nothing else: no .env, no deploy/site, no tests.
COPY . ./
COPY --from=console /build/web/console/dist ./web/console/dist

# A user of its own; the sources stay root's and read-only to it. /data holds the
# configuration (mounted) and what Kuvert keeps on disk; /registration the appservice
# registration (volumes in docker-compose.yml take over this ownership when first mounted).
RUN groupadd --system --gid 10001 kuvert \
    && useradd --system --uid 10001 --gid kuvert --home-dir /data --no-create-home --shell /usr/sbin/nologin kuvert \
    && mkdir -p /data /registration \
    && chown kuvert:kuvert /data /registration
USER kuvert

# 8080: public API, web console, guest page. 9993: application service API, for the homeserver
# only (never publish it).
EXPOSE 8080 9993

# No curl in slim images: Node's own fetch asks the public listener whether Kuvert is alive.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["node", "bin/kuvert.js"]
CMD ["start", "--config", "/data/config.yaml"]
