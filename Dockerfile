# syntax=docker/dockerfile:1
# One image for the operator and the workers; the chart passes the command:
#   stepwise operator ...        stepwise worker --app ...
# Your workflows go in an image built FROM this one: see examples/Dockerfile.
ARG PYTHON_VERSION=3.11
# Any Debian-like image with python3 (and its venv module) will do; both stages use it.
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim

# ---- build: a virtualenv with stepwise and every extra, no build tools in the final image ----
FROM ${BASE_IMAGE} AS build
# Unset in a normal build. An offline build passes local wheels instead of an index
# (scripts/images.sh: PIP_NO_INDEX=1, PIP_FIND_LINKS=<a mounted wheel dir>); build-args
# never reach the final image.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stepwise ./stepwise
RUN python3 -m venv /opt/stepwise \
 && /opt/stepwise/bin/pip install --upgrade pip \
 && /opt/stepwise/bin/pip install '.[all]'

# ---- runtime ----
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="stepwise" \
      org.opencontainers.image.description="Durable workflows for Python, run on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
# The chart runs the containers with a read-only root filesystem: no bytecode caches.
ENV PATH=/opt/stepwise/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 stepwise \
 && useradd --system --uid 10001 --gid stepwise --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin stepwise \
 && mkdir /app && chown stepwise:stepwise /app
COPY --from=build /opt/stepwise /opt/stepwise
WORKDIR /app
# Numeric, so Kubernetes can verify runAsNonRoot without resolving the name.
USER 10001:10001
# 8080: the operator's /healthz; 8081: the workers' /readyz, /healthz and /metrics.
EXPOSE 8080 8081
ENTRYPOINT ["stepwise"]
CMD ["--help"]
