"""Content-addressed job definitions: the name is a hash of the whole definition, so finding it by name
(DescribeJobDefinitions) before registering means restarts and replicas reuse one revision."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aws_array_plugin.aws_calls import AwsCalls
from aws_array_plugin.bounded import BoundedCache
from aws_array_plugin.job_requests import JobDefinition
from aws_array_plugin.metrics import Metrics

log = logging.getLogger(__name__)

# ARNs kept by content hash: a definition's ARN never changes, so a hit saves a DescribeJobDefinitions.
CACHED_DEFINITIONS = 10_000


class JobDefinitions:
    def __init__(self, api: AwsCalls, metrics: Metrics, max_cached: int = CACHED_DEFINITIONS) -> None:
        self._api = api
        self._metrics = metrics
        self._arns: BoundedCache[str, str] = BoundedCache(max_cached)
        self._inflight: dict[str, asyncio.Future[str]] = {}

    async def arn(self, definition: JobDefinition, deadline: float | None = None) -> str:
        """The ARN of an ACTIVE definition with this content, registering it only if none exists."""
        cached = self._arns.get(definition.name)
        if cached:
            return cached
        inflight = self._inflight.get(definition.name)
        if inflight:  # concurrent CreateTasks for one content share one lookup
            return await asyncio.shield(inflight)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[definition.name] = future
        try:
            arn = await self._find(definition, deadline) or await self._register(definition, deadline)
            self._arns.put(definition.name, arn)
            future.set_result(arn)
            return arn
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[definition.name]

    async def _find(self, definition: JobDefinition, deadline: float | None) -> str | None:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"jobDefinitionName": definition.name, "status": "ACTIVE"}
            if token:
                params["nextToken"] = token
            resp = await self._api.call("job_definitions", "batch", "describe_job_definitions", deadline=deadline,
                                        **params)
            found.extend(resp.get("jobDefinitions", []))
            token = resp.get("nextToken")
            if not token:
                break
        image = definition.body["containerProperties"]["image"]
        matching = [d for d in found if d.get("status", "ACTIVE") == "ACTIVE"
                    and d.get("containerProperties", {}).get("image") == image]
        if not matching:
            return None
        # The lowest revision: replicas that raced to register still converge on one ARN.
        best = min(matching, key=lambda d: int(d.get("revision", 0)))
        return str(best["jobDefinitionArn"])

    async def _register(self, definition: JobDefinition, deadline: float | None) -> str:
        resp = await self._api.call("job_definitions", "batch", "register_job_definition", deadline=deadline,
                                    **definition.body)
        self._metrics.job_definition_registrations.inc()
        log.info("registered job definition %s revision %s", definition.name, resp.get("revision"))
        return str(resp["jobDefinitionArn"])
