# meshgate's container image: a build stage that makes a wheel and a venv of
# the runtime dependencies only, and a slim runtime stage that copies the venv
# and runs as a non-root user.
#
#   docker build -t meshgate .           (or: buildah bud -t meshgate .)
#   docker run -v $PWD/gateway.yaml:/etc/meshgate/gateway.yaml:ro -p 8080:8080 meshgate
#
# The config is a mounted file (/etc/meshgate/gateway.yaml, a ConfigMap in
# Kubernetes); health is the admin port's /ready (readiness) and /healthz
# (liveness). BASE_IMAGE can point at a mirror of python:3.12-slim.
# tests/deploy/image_steps.sh runs the same install steps in a fresh venv.

ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
# Behind a TLS-intercepting proxy, pip needs the proxy's CA: mount a bundle
# and name it, e.g. --volume /etc/ssl/certs/ca-certificates.crt:/run/ca.crt:ro
# --build-arg PIP_CERT=/run/ca.crt. Unset, pip uses its own bundle.
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Runtime dependencies only (the project's `dependencies`, no extras: the test
# extra holds the linters, pytest and Envoy), in a layer of their own that is
# rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -m venv /opt/meshgate \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && /opt/meshgate/bin/pip install --no-compile -r /tmp/requirements.txt
COPY README.md LICENSE ./
COPY gateway ./gateway
COPY mesh ./mesh
COPY filters ./filters
RUN /opt/meshgate/bin/pip install --no-compile --no-deps . \
    && /opt/meshgate/bin/python -m compileall -q /opt/meshgate/lib

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="meshgate" \
      org.opencontainers.image.description="REST/JSON to gRPC and Dubbo gateway with a proxyless xDS mesh core" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/meshgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 meshgate \
    && useradd --system --uid 10001 --gid meshgate --home-dir /nonexistent --shell /usr/sbin/nologin meshgate \
    && mkdir -p /etc/meshgate
COPY --from=build /opt/meshgate /opt/meshgate
USER 10001:10001
# Listener ports come from the config; 8080 and the admin 9901 by convention.
EXPOSE 8080 9901
HEALTHCHECK --interval=10s --timeout=2s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9901/ready', timeout=2).status != 200)"]
ENTRYPOINT ["meshgate", "run"]
CMD ["-c", "/etc/meshgate/gateway.yaml", "--workers", "2"]
