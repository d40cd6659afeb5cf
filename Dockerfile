# syntax=docker/dockerfile:1
# commerce-bridge: the `commerce-bridge` command and nothing else. No JDK: in production Kafka runs
# elsewhere (Strimzi or a managed cluster), so `commerce-bridge kafka start` is not for this image.
#
#   docker build -t commerce-bridge:0.1.0 .
#   docker run --rm -p 8080:8080 -v "$PWD/bridge.toml:/etc/bridge/bridge.toml:ro" \
#       --env-file bridge.env commerce-bridge:0.1.0            # = commerce-bridge ingress --config …
#
# Kubernetes manifests: deploy/ (docs/deploy.md). Pin the base image by digest in your registry's
# build if you need bit-for-bit rebuilds: --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:…
ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a wheel of the project and of every dependency ------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge/ bridge/
COPY consumers/ consumers/
RUN python -m pip wheel --wheel-dir /wheels .

# -- runtime: a venv installed from those wheels only, run as an unprivileged user -------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="commerce-bridge" \
      org.opencontainers.image.description="E-commerce webhooks into Kafka events; consumer decisions back into rate-limited platform API writes." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/bridge/bin:$PATH
# uid/gid 10001 is what deploy/ sets as runAsUser/runAsGroup/fsGroup. /var/bridge holds the SQLite
# outbox (outbox.dsn = "sqlite:///var/bridge/outbox.db"); mount a volume there to keep it.
RUN groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin bridge \
 && install -d -o 10001 -g 10001 -m 0750 /var/bridge \
 && install -d -m 0755 /etc/bridge
# The wheels are bind-mounted, not copied: they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/bridge \
 && /opt/bridge/bin/pip install --no-index --find-links=/wheels commerce-bridge \
 && /opt/bridge/bin/commerce-bridge --version
WORKDIR /var/bridge
USER 10001:10001
EXPOSE 8080 9090
# Python is PID 1 on purpose: every `commerce-bridge` process handles SIGTERM itself (stop taking work,
# drain, commit, exit 0) and starts no child processes in production.
ENTRYPOINT ["commerce-bridge"]
CMD ["ingress", "--config", "/etc/bridge/bridge.toml"]
