# One image, two programs. Build stages:
#   build        npm ci + tsc, then prune to production dependencies
#   runtime      node + the compiled programs, no compiler, no dev dependencies
#   registrator  ENTRYPOINT registrator; runs as root because it talks to the Docker socket
#   balancer     ENTRYPOINT balancer; runs as the unprivileged `node` user (the default target)
#
#   docker build --target registrator -t consul-balancer/registrator .
#   docker build --target balancer    -t consul-balancer/balancer .
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: no `prepare` before the sources are here, and no native builds of optional addons
# (ssh2's crypto binding); dockerode only speaks to a local socket, where ssh2 is never loaded.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY common common
COPY registrator/src registrator/src
COPY balancer/src balancer/src
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY bin bin
COPY templates templates
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
# Reload mode writes its rendered configuration here; the unprivileged user must own it.
RUN mkdir -p /app/run && chown node:node /app/run

FROM runtime AS registrator
# The Docker socket is root:docker 0660 on most hosts. Running as root is the portable default, as with
# gliderlabs/registrator. To drop root, run with `--user 1000:<gid of the socket>` (or compose
# `user:` + `group_add:`): the socket's group is all it needs.
USER root
ENTRYPOINT ["node", "/app/bin/registrator.js"]
CMD ["-internal", "consul://consul:8500"]

FROM runtime AS balancer
USER node
ENV BALANCER_LISTEN=0.0.0.0:8080 \
    BALANCER_ADMIN=0.0.0.0:8081 \
    BALANCER_CONFIG_OUT=/app/run/balancer.conf \
    BALANCER_ADMIN_TOKEN_FILE=/app/run/admin-token
EXPOSE 8080 8081
ENTRYPOINT ["node", "/app/bin/balancer.js"]
CMD []
