# syntax=docker/dockerfile:1
#
# The service's image: `docker build -t nifty50:0.1.0 .` (README.md, "Deploy").
#
#   npm      node:20 slim with npm 11, the major this project's lock file and install-script
#            policy are written for (node:20 images ship npm 10, which ignores package.json's
#            `allowScripts` and so would run, or skip, other install scripts than CI does).
#   deps     `npm ci --omit=dev`: the production dependencies, native ones built for this libc.
#   build    `npm ci` with dev dependencies, then the checks that need no service (typecheck and
#            the layering rules, so an image is never built from a tree that fails them), then the
#            dashboard built once into web/dist with the hash `npm start` compares
#            (src/web-build.ts), so a container starts without building it.
#   runtime  node:20 slim, no npm run at all: the production node_modules, the sources tsx runs,
#            the built dashboard; user 1000 (non-root), no secret (every credential comes from the
#            environment at run time: src/config.ts).
#
# The test suite is not run here: most of it needs PostgreSQL, Redis and NATS, which a build has
# not got; .ci/run runs all of it against real ones. A subset picked by path would shrink silently
# as tests change.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS npm
RUN npm install --global --no-audit --no-fund npm@11.19.1 && npm --version

FROM npm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM npm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run typecheck && npm run layering
# ensureWebBuild is what `npm start` calls: it builds web/ and writes web/dist/.build-hash, which
# the runtime stage keeps beside the very same sources, so start-up finds the build fresh.
RUN node --import tsx --input-type=module -e "import { ensureWebBuild } from './src/web-build.ts'; import { createProcessLogger } from './src/log.ts'; await ensureWebBuild(createProcessLogger('info', 'json'));" \
 && test -s web/dist/.build-hash

FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# Not secrets: where to listen (all interfaces: the container's network is the boundary), JSON logs
# for the collector, and the writable data directory (spill, keys file; a volume in Kubernetes).
ENV HOST=0.0.0.0 \
    PORT=3000 \
    LOG_FORMAT=json \
    DATA_DIR=/var/lib/nifty50
RUN mkdir -p /var/lib/nifty50 && chown 1000:1000 /var/lib/nifty50
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/package.json /app/package-lock.json /app/tsconfig.json ./
COPY --from=build /app/src ./src
COPY --from=build /app/workers ./workers
COPY --from=build /app/sql ./sql
COPY --from=build /app/web ./web
# The image's files stay root's and read-only to the service; only DATA_DIR (and /tmp) is written.
USER 1000:1000
EXPOSE 3000
# /health answers while the process serves (readiness is /ready, for orchestrators). Node, as the
# slim image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# src/main.ts drains on SIGTERM (feed closed, workers and the writer drained, then exit 0).
STOPSIGNAL SIGTERM
# `npm start` without npm: node is PID 1, so SIGTERM reaches the service itself (not an npm
# process in front of it), its exit code is the container's, and no npm process idles beside it.
CMD ["node", "--import", "tsx", "src/main.ts"]
