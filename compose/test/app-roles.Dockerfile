# CI-only: the role stages of ../../Dockerfile on top of the image built from app-runtime.Dockerfile.
# Built without a context (`docker build --target <role> - < app-roles.Dockerfile`).
ARG RUNTIME_IMAGE
FROM ${RUNTIME_IMAGE} AS runtime

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
    BALANCER_CONFIG_OUT=/app/run/balancer.conf \
    BALANCER_ADMIN_TOKEN_FILE=/app/run/admin-token
EXPOSE 8080 8081
ENTRYPOINT ["node", "/app/bin/balancer.js"]
CMD []
