# syntax=docker/dockerfile:1
# davgate: a caching WebDAV gateway. Build: docker build -t davgate .   (see docs/docker.md)

# ---- deps: every dependency, with the native sqlite3 module compiled
FROM node:20-bookworm-slim AS deps
# sqlite3 (used by @keyv/sqlite) compiles from source when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# ---- build: compile TypeScript. Only src/ goes in, so a change to the tests does not rebuild the image.
FROM deps AS build
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- prod-deps: production dependencies only, sqlite3 cut down to what it loads at run time
FROM deps AS prod-deps
# sqlite3 loads build/Release/node_sqlite3.node through `bindings` (lib/sqlite3-binding.js), which
# finds the package root by its package.json. The compiler's objects, the static library and the
# SQLite sources (~23 MB) stay behind. Type declarations, source maps and READMEs of the
# dependencies (~14 MB) are never loaded; licence texts stay. The last command proves the trimmed
# sqlite3 still works.
RUN npm prune --omit=dev --no-audit --no-fund \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -iname '*.md' \) \
      ! -iname 'licen[cs]e*' ! -iname 'copying*' ! -iname 'notice*' -delete \
 && cd node_modules/sqlite3 \
 && strip --strip-unneeded build/Release/node_sqlite3.node \
 && mv build/Release/node_sqlite3.node . \
 && rm -rf build deps src binding.gyp node-addon-api \
 && mkdir -p build/Release \
 && mv node_sqlite3.node build/Release/ \
 && cd /app \
 && node -e "new (require('sqlite3').Database)(':memory:').get('select sqlite_version() v', (e, r) => { if (e) throw e; console.log('sqlite', r.v); })"

# ---- runtime stage
FROM node:20-bookworm-slim
ENV NODE_ENV=production
# Memory (docs/benchmarks.md, "Memory"): glibc returns freed 4 MiB block buffers to the system; the
# ENTRYPOINT caps V8's young generation at 4 MiB per semi-space.
ENV MALLOC_MMAP_THRESHOLD_=1048576
# The CMD passes --cache /cache; this lets other commands in the container find the same cache
# (`docker exec davgate node dist/src/main.js cache stats`).
ENV DAVGATE_CACHE_DIR=/cache
WORKDIR /app
# Owned by root: user node can run the code but not change it.
COPY package.json ./package.json
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# /data is the upstream directory, /cache the block cache; both must be writable by user node (uid 1000).
# A fresh named volume starts as a copy of these, owner and mode included.
RUN mkdir -p /data /cache \
 && chown node:node /data /cache \
 && chmod 0700 /cache
USER node
VOLUME ["/data", "/cache"]
# 8080: WebDAV; 9180: admin listener (/metrics, /healthz, /readyz, /invalidate; no authentication).
EXPOSE 8080 9180
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9180/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Late, so that a new version only rebuilds this metadata, not the layers above.
# VERSION defaults to package.json's version (test/unit/compose.test.ts keeps the two equal).
ARG VERSION=0.1.0
ARG SOURCE=
LABEL org.opencontainers.image.title="davgate" \
      org.opencontainers.image.description="A caching WebDAV gateway: mount a directory, an object store or a WebDAV server through a local block cache" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE}"
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/src/main.js", "serve"]
# Listening on 0.0.0.0 requires authentication or an explicit opt-out. For real deployments replace
# --allow-anonymous-public with --htpasswd /path/to/users.htpasswd (mount the file into the container).
CMD ["--upstream", "/data", "--cache", "/cache", "--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9180", "--allow-anonymous-public"]
