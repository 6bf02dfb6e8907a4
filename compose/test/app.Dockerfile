# CI-only twin of ../../Dockerfile: the same runtime layout and role stages, but FROM a local stand-in node
# image and with the app built on the host (no registry is reachable where the end-to-end test runs).
# The context is a tar stream assembled by the test: package.json, bin/, templates/, dist/ and the
# production part of node_modules/, plus this file.
ARG NODE_IMAGE
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY bin bin
COPY templates templates
COPY node_modules node_modules
COPY dist dist
# The stand-in has no shell, so no RUN: the directory comes from the context, ownership from --chown.
COPY --chown=1000:1000 compose/test/run-dir /app/run

FROM runtime AS registrator
USER root
ENTRYPOINT ["node", "/app/bin/registrator.js"]
CMD ["-internal", "consul://consul:8500"]

FROM runtime AS consul-double
USER node
ENTRYPOINT ["node", "/app/dist/test/support/consul-double/cli.js"]
CMD ["--port", "8500", "--host", "0.0.0.0", "--node-name", "consul"]

FROM runtime AS balancer
USER node
ENV BALANCER_LISTEN=0.0.0.0:8080 \
    BALANCER_ADMIN=0.0.0.0:8081 \
    BALANCER_CONFIG_OUT=/app/run/balancer.conf
EXPOSE 8080 8081
ENTRYPOINT ["node", "/app/bin/balancer.js"]
CMD []
