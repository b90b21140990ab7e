# The image of medsweep's Kubernetes manifests (cluster/kubernetes/): Python 3.11, medsweep and
# Ray with the extras a cluster node needs, and nothing else; the data never goes in (the head
# downloads it, or reads it from the claim). Build from the repository root:
#   docker build -t ghcr.io/YOUR-LAB/medsweep:0.1.0 .
#   docker push ghcr.io/YOUR-LAB/medsweep:0.1.0
# GPUs: PyTorch's Linux wheels from PyPI bring their own CUDA runtime, so a slim Python base is
# enough; the node supplies the driver (NVIDIA device plugin). RAY_VERSION must equal the
# rayVersion of raycluster.yaml/rayjob.yaml and the Ray of any client that connects.
FROM python:3.11-slim

ARG RAY_VERSION=2.60.0
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# wget: KubeRay's liveness/readiness probes call it in the Ray container; libglib2.0-0: OpenCV.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

# uid 1000 like Ray's own images; the manifests set fsGroup 1000 so it can write the claim.
RUN useradd --create-home --uid 1000 ray
WORKDIR /home/ray/medsweep

# The dependencies first, from pyproject.toml alone, so that a code change reuses this layer.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt "ray[default]==${RAY_VERSION}"

COPY . .
RUN pip install --no-deps . && rm -rf build *.egg-info

USER 1000
ENV MEDSWEEP_CACHE_DIR=/home/ray/.cache/medsweep
