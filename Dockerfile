# syntax=docker/dockerfile:1
#
# One image for every Cairn process: `python -m services.<name> serve`, the init job and the CPU worker.
# A second target carries CUDA PyTorch for the GPU training worker.
#
#   docker build -t cairn:0.1.0 .                                   # target "runtime" (the last stage): CPU torch
#   docker build --target worker-cuda -t cairn-cuda:0.1.0 .         # GPU worker on an nvidia/cuda runtime base
#
# Build arguments (all optional):
#   PYTHON_IMAGE          base of the CPU image                    (python:3.11-slim-bookworm)
#   CUDA_IMAGE            base of the GPU worker image             (nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04)
#   TORCH_VERSION         must match the torch pin in constraints.txt (2.13.0)
#   TORCH_CPU_INDEX_URL   where the CPU-only torch wheel comes from (https://download.pytorch.org/whl/cpu)
#   TORCH_CUDA_INDEX_URL  where the CUDA torch wheel comes from     (https://download.pytorch.org/whl/cu128);
#                         keep its CUDA version no newer than CUDA_IMAGE's and the nodes' driver.
#
# A local wheel such as 2.13.0+cpu satisfies the `torch==2.13.0` pin in constraints.txt, so torch is
# installed first from the PyTorch index and `pip install -c constraints.txt .` then keeps it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_CUDA_INDEX_URL=https://download.pytorch.org/whl/cu128

# ---------------------------------------------------------------------------------------------------
# CPU build: a virtualenv in /opt/venv, copied whole into the runtime stage.
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_VERSION
ARG TORCH_CPU_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# a compiler only for the rare dependency without a wheel for this platform; this stage is not shipped
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN pip install --index-url "${TORCH_CPU_INDEX_URL}" "torch==${TORCH_VERSION}"
# dependencies first (a layer that survives source edits), then the project itself
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt
COPY libs ./libs
COPY services ./services
COPY examples ./examples
RUN pip install -c constraints.txt . \
 && python -c "import services.gateway, libs.stack.catalog"

# ---------------------------------------------------------------------------------------------------
# GPU worker: Python 3.11 on the nvidia/cuda runtime base (Ubuntu 22.04 ships 3.10, so deadsnakes).
FROM ${CUDA_IMAGE} AS cuda-base
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gnupg software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && apt-get purge -y software-properties-common \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*

FROM cuda-base AS cuda-builder
ARG TORCH_VERSION
ARG TORCH_CUDA_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3.11-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN pip install --index-url "${TORCH_CUDA_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt
COPY libs ./libs
COPY services ./services
COPY examples ./examples
RUN pip install -c constraints.txt . \
 && python -c "import torch, libs.stack.catalog; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

FROM cuda-base AS worker-cuda
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    XDG_CACHE_HOME=/tmp/.cache \
    CAIRN_HOST=0.0.0.0
RUN groupadd --system --gid 10001 cairn \
 && useradd --system --uid 10001 --gid cairn --home-dir /home/cairn --create-home --shell /usr/sbin/nologin cairn \
 && mkdir -p /var/lib/cairn \
 && chown cairn:cairn /var/lib/cairn
COPY --from=cuda-builder /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py deploy/docker/init.py /opt/cairn/
WORKDIR /home/cairn
USER 10001:10001
# no HTTP port: the probe checks that Postgres and Kafka answer
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/cairn/healthcheck.py", "--deps"]
CMD ["python", "-m", "services.worker", "serve", "--pool", "gpu"]

# ---------------------------------------------------------------------------------------------------
# Runtime (default target): services, init job, CPU worker.
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cairn" \
      org.opencontainers.image.description="Cairn event-driven model registry: every service from one image"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    CAIRN_HOST=0.0.0.0 \
    CAIRN_PORT=8080
RUN groupadd --system --gid 10001 cairn \
 && useradd --system --uid 10001 --gid cairn --home-dir /home/cairn --create-home --shell /usr/sbin/nologin cairn \
 && mkdir -p /var/lib/cairn \
 && chown cairn:cairn /var/lib/cairn
COPY --from=builder /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py deploy/docker/init.py /opt/cairn/
WORKDIR /home/cairn
USER 10001:10001
# the root filesystem may be read-only (compose read_only, k8s readOnlyRootFilesystem): only /tmp and
# /var/lib/cairn are written
EXPOSE 8080
# /healthz: the process is up. Compose overrides this with /readyz to order start-up on real readiness.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/cairn/healthcheck.py"]
CMD ["python", "-m", "services.gateway", "serve"]
