# syntax=docker/dockerfile:1
# aws-array-plugin: the gRPC external plugin (connector) for flytepropeller.
#   docker build -t ghcr.io/<org>/aws-array-plugin:$(version) .
# The base image is pinned by tag; pin it by digest too when publishing, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest of the day>
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm` prints it).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/aws-array-plugin
# Dependencies first (a layer that only changes with the lock file), then the package itself.
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
COPY aws_array_plugin ./aws_array_plugin
RUN /opt/aws-array-plugin/bin/pip install --constraint requirements/constraints.txt . \
 && /opt/aws-array-plugin/bin/aws-array-plugin --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="aws-array-plugin" \
      org.opencontainers.image.description="Flyte external plugin running aws-batch tasks and legacy map tasks on AWS Batch" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 65532 plugin \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin plugin
COPY --from=build /opt/aws-array-plugin /opt/aws-array-plugin
# HOME=/tmp: the SDK looks for ~/.aws; the root filesystem may be read-only (the chart mounts /tmp).
ENV PATH=/opt/aws-array-plugin/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
# 8000: gRPC (AsyncAgentService, AgentMetadataService, health, reflection); 9090: /metrics.
EXPOSE 8000 9090
ENTRYPOINT ["aws-array-plugin", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8000", "--metrics-port", "9090"]
