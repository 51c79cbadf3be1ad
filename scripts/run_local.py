"""Run the plugin against a local moto server (AWS Batch, S3, IAM on loopback), provisioned with a
compute environment, the job queue `default` and the bucket `flyte-data`. moto's simple Batch backend
marks every job SUCCEEDED at once; the full emulator with a process runtime is `aws-array-plugin emulator`."""

from __future__ import annotations

import logging
import os
import sys

import boto3
import requests
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from aws_array_plugin.cli import main


def start_local_aws(region: str = "us-east-1") -> str:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    requests.post(f"{endpoint}/moto-api/config", json={"batch": {"use_docker": False}}, timeout=10)
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": region})

    def client(service: str):  # type: ignore[no-untyped-def]
        return boto3.client(service, endpoint_url=endpoint, region_name=region)

    role = client("iam").create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client("batch").create_compute_environment(computeEnvironmentName="flyte-ce", type="UNMANAGED", serviceRole=role)
    client("batch").create_job_queue(jobQueueName="default", state="ENABLED", priority=1,
                                     computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "flyte-ce"}])
    client("s3").create_bucket(Bucket="flyte-data")
    return endpoint


if __name__ == "__main__":
    endpoint = start_local_aws()
    config = os.path.join(os.path.dirname(__file__), "local-config.yaml")
    print(f"local AWS (moto) at {endpoint}; plugin gRPC on 127.0.0.1:8000, metrics on :9090", flush=True)
    sys.exit(main(["serve", "--host", "127.0.0.1", "--port", "8000", "--metrics-port", "9090", "--config", config]))
