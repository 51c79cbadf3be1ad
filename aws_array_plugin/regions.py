"""Region resolution and AWS partitions (aws, aws-cn, aws-us-gov), for clients, ARNs and console links."""

from __future__ import annotations

import os


class RegionError(ValueError):
    pass


def resolve_region(configured: str = "") -> str:
    """Config `region`, else AWS_REGION, else AWS_DEFAULT_REGION, else the SDK profile's region."""
    for candidate in (configured, os.environ.get("AWS_REGION", ""), os.environ.get("AWS_DEFAULT_REGION", "")):
        if candidate.strip():
            return candidate.strip()
    from botocore.session import Session  # the profile's region, as the SDK would resolve it

    region = Session().get_config_variable("region")
    if region:
        return str(region)
    raise RegionError("no AWS region: set `region` in the config file, or AWS_REGION / AWS_DEFAULT_REGION")


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def console_host(region: str) -> str:
    """Host of the AWS console for a region, by partition."""
    p = partition(region)
    if p == "aws-cn":
        return f"{region}.console.amazonaws.cn"
    if p == "aws-us-gov":
        return f"{region}.console.amazonaws-us-gov.com"
    return f"{region}.console.aws.amazon.com"
