# syntax=docker/dockerfile:1
#
# One image, two entry points:
#   - the controller (default ENTRYPOINT): externalsource-controller [flags]
#   - the hooks sidecar: command ["externalsource-hooks-sidecar", "--whitelist", "/etc/externalsource/hooks/whitelist.yaml"]
# The sidecar executes whitelisted hook programs by absolute path, so the image
# ships jq (/usr/bin/jq), the tool the default whitelist allows. Add your own
# tools with a derived image (see docs/installation.md).
#
# Builder: a virtualenv installed from constraints.txt (exact pins, wheels only,
# so no compiler is needed or present). Final: the same slim base, the venv, jq,
# a numeric non-root user and no pip/setuptools/wheel in the venv.
#
# BASE is any Debian bookworm image with python3 (3.11) and python3-venv; the
# default is the official slim Python image. CI, which cannot reach Docker Hub,
# builds from a debootstrap'ed bookworm (tests/e2e/test_image.py). Both stages
# must use the same BASE: the venv links to the base's interpreter.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/externalsource
COPY constraints.txt ./
RUN /opt/externalsource/bin/pip install --only-binary=:all: --requirement constraints.txt
COPY pyproject.toml README.md LICENSE ./
COPY controller/ controller/
COPY generators/ generators/
COPY storage/ storage/
COPY hooks/ hooks/
COPY s3common/ s3common/
RUN /opt/externalsource/bin/pip install --no-deps --constraint constraints.txt . \
    && /opt/externalsource/bin/pip check \
    && /opt/externalsource/bin/pip uninstall --yes pip setuptools wheel \
    && find /opt/externalsource -name '__pycache__' -type d -prune -exec rm -rf {} + \
    && /opt/externalsource/bin/python -m compileall -q /opt/externalsource

FROM ${BASE} AS final
# bookworm's jq 1.6, any Debian revision (point releases and security updates replace it)
ARG JQ_VERSION=1.6-2.1*
# the base's own pip (the official image has one, Debian's python3 has none) goes too
RUN apt-get update \
    && apt-get install --yes --no-install-recommends "jq=${JQ_VERSION}" \
    && rm -rf /var/lib/apt/lists/* \
    && if python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip uninstall --yes pip setuptools wheel; fi
COPY --from=builder /opt/externalsource /opt/externalsource
ENV PATH=/opt/externalsource/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
USER 65532:65532
EXPOSE 8080 9090 9440
# Kubernetes probes /healthz and /readyz; a Docker HEALTHCHECK would be wrong
# for the sidecar entry point, which has no health port.
HEALTHCHECK NONE
ENTRYPOINT ["externalsource-controller"]
