# syntax=docker/dockerfile:1
# davgate: a caching WebDAV gateway. Build: docker build -t davgate .

# ---- build stage: compile TypeScript, build the native sqlite3 module, drop dev dependencies
FROM node:20-bookworm-slim AS build
# sqlite3 (used by @keyv/sqlite) compiles from source when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build \
 && npm prune --omit=dev

# ---- runtime stage
FROM node:20-bookworm-slim
ENV NODE_ENV=production
# Memory (README, "Memory"): glibc returns freed 4 MiB block buffers to the system; the
# ENTRYPOINT caps V8's young generation at 4 MiB per semi-space.
ENV MALLOC_MMAP_THRESHOLD_=1048576
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# /data is the upstream directory, /cache the block cache; both must be writable by user node (uid 1000).
RUN mkdir -p /data /cache \
 && chown node:node /data /cache \
 && chmod 0700 /cache
USER node
VOLUME ["/data", "/cache"]
# 8080: WebDAV; 9180: admin listener (/metrics, /healthz, /readyz, /invalidate; no authentication).
EXPOSE 8080 9180
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9180/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/src/main.js", "serve"]
# Listening on 0.0.0.0 requires authentication or an explicit opt-out. For real deployments replace
# --allow-anonymous-public with --htpasswd /path/to/users.htpasswd (mount the file into the container).
CMD ["--upstream", "/data", "--cache", "/cache", "--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9180", "--allow-anonymous-public"]
