"""Run Flyte `aws-batch` tasks and legacy map tasks (`container_array`) on AWS Batch, as an external
gRPC plugin that flytepropeller drives like any connector."""

__version__ = "0.1.0"
