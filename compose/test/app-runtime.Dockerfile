# CI-only twin of the `runtime` stage of ../../Dockerfile: the same layout under /app, but FROM a local
# stand-in node image and with the app built on the host (no registry is reachable where the end-to-end
# test runs). The context is a tar stream assembled by the test: package.json, bin/, templates/, dist/,
# the production part of node_modules/ and an empty compose/test/run-dir, plus this file.
# The role stages (registrator, balancer, consul-double) are in app-roles.Dockerfile, built FROM this
# image without a context, so the heavy context is sent once.
ARG NODE_IMAGE
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY bin bin
COPY templates templates
COPY node_modules node_modules
COPY dist dist
# The stand-in has no shell, so no RUN: the directory comes from the context, ownership from --chown.
COPY --chown=1000:1000 compose/test/run-dir /app/run
