# syntax=docker/dockerfile:1
# One image for the operator and the workers; the chart passes the command:
#   stepwise operator ...        stepwise worker --app ...
# Your workflows go in an image built FROM this one: see examples/Dockerfile.
ARG PYTHON_VERSION=3.11

# ---- build: a virtualenv with stepwise and every extra, no build tools in the final image ----
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stepwise ./stepwise
RUN python -m venv /opt/stepwise \
 && /opt/stepwise/bin/pip install --upgrade pip \
 && /opt/stepwise/bin/pip install '.[all]'

# ---- runtime ----
FROM python:${PYTHON_VERSION}-slim
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
