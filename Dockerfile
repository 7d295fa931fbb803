# syntax=docker/dockerfile:1
# Every image the chart runs, from the repository root. `docker buildx bake` builds them all
# (docker-bake.hcl holds each image's target, args and tags); one alone, for example:
#   docker build --target service --build-arg PACKAGE=@food/orders-subgraph \
#     --build-arg TITLE=food-orders --build-arg PORTS="4003 9464" -t food-orders .
#   docker build --target migrations --build-arg PACKAGE=@food/prisma -t food-migrations .
ARG NODE_IMAGE=node:20-bookworm-slim

# The whole workspace, built once: it takes no image's args, so every target shares it.
FROM ${NODE_IMAGE} AS build
ENV CI=true TURBO_TELEMETRY_DISABLED=1 CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1
RUN npm install -g pnpm@10.34.8
WORKDIR /repo
# Dependencies from the lockfile alone, so that a source change reuses this layer.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch --frozen-lockfile
COPY . .
# Generated code (resolver types, Prisma clients), then every package's build.
RUN pnpm install --frozen-lockfile --offline \
  && pnpm run generate \
  && pnpm --recursive run build

# One package with its production dependencies only, in /out (--legacy: pnpm 10 deploys without
# injected packages).
FROM build AS deploy
ARG PACKAGE
RUN pnpm --filter "$PACKAGE" deploy --prod --legacy /out
# Nothing at run time reads source maps or type declarations, and the Prisma client needs only its
# Postgres query compiler. The prisma CLI and typescript, the client's optional peers, served only
# `prisma generate` above: they stay only where the package depends on the CLI (migrations).
RUN cd /out/node_modules \
  && find .pnpm -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete \
  && find .pnpm -path '*/@prisma/client/runtime/*' -type f \
    \( -name 'query_engine_bg.*' -o -name '*cockroachdb*' -o -name '*mysql*' -o -name '*sqlserver*' -o -name '*sqlite*' \) -delete \
  && if [ ! -e prisma ]; then rm -rf .pnpm/prisma@* .pnpm/typescript@*; fi

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Any non-root uid works; the chart runs it as 10001 with a read-only root filesystem.
USER 10001:10001

# The gateway and the subgraphs; a subgraph's worker runs its image with `node dist/worker-main.js`.
# CMD cannot read a build arg, so the default command belongs to the target.
FROM runtime AS service
ARG TITLE
ARG PORTS
LABEL org.opencontainers.image.title="${TITLE}"
COPY --from=deploy /out /app
EXPOSE ${PORTS}
CMD ["node", "dist/main.js"]

# Applies each service's committed migrations to its database, offline (the JavaScript schema
# engine over the pg adapter); the chart's hook Job runs it with the four *_DATABASE_URL set
# (`deploy <service>...` migrates only those).
FROM runtime AS migrations
ARG TITLE=food-migrations
LABEL org.opencontainers.image.title="${TITLE}"
# The Prisma CLI writes nothing but may look for a home directory; /tmp is the only writable place.
ENV HOME=/tmp CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1
COPY --from=deploy /out /app/prisma
CMD ["node", "prisma/dist/cli.js", "deploy"]
