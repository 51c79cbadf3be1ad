"""Flyte 2 SDK plugin for aws-array-plugin: `flyte.TaskEnvironment(..., plugin_config=AWSBatch(...))` makes each
`@env.task` an `aws-batch` task, which the Flyte 2 executor's connector-service plugin hands to aws-array-plugin."""

from aws_array_plugin_flyte._task import (
    CUSTOM_VERSION,
    TASK_TYPE,
    TASK_TYPE_VERSION,
    AWSBatch,
    AWSBatchFunctionTask,
)

__all__ = ["CUSTOM_VERSION", "TASK_TYPE", "TASK_TYPE_VERSION", "AWSBatch", "AWSBatchFunctionTask"]
__version__ = "0.1.0"
