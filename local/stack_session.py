"""``python -m local up`` keeps the local stack running for the operations CLI; ``upload`` feeds it.

``up`` prints where everything is and one ``export`` line: AWS_ENDPOINT_URL points boto3, the
AWS CLI and ``python -m cutouts_cli`` at the moto server, with moto's dummy region and keys, and
CUTOUTS_STACK names a CloudFormation stack registered in moto whose outputs are the deployed
stack's (bucket, queues, table, prefixes). So the CLI finds the local stack exactly as it finds a
deployed one, by ``--stack``, and no flag differs between the two.

``up`` also writes the same facts to a state file (mode 0600, removed when it stops), which
``python -m local upload`` reads to find the running stack.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cutouts import constants as c
from local.aws import REGION

STACK_NAME = f"{c.STACK_NAME_PREFIX}local"
# moto accepts any keys; these are the ones use_fake_credentials gives the functions.
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"  # noqa: S105 - moto's dummy credentials, not a secret


class SessionError(Exception):
    """No usable running stack: the message says what to do."""


@dataclass(frozen=True)
class StackSession:
    """Where a running local stack is: printed by ``up``, written to its state file."""

    pid: int
    endpoint_url: str
    region: str
    stack_name: str
    bucket: str
    queue_url: str
    dlq_url: str
    table: str
    input_prefix: str
    output_prefix: str
    failure_prefix: str
    gateway: str

    def environment(self) -> dict[str, str]:
        """What the CLI, boto3 and the AWS CLI need to reach the stack (AWS_ENDPOINT_URL: boto3 >= 1.28)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,  # what boto3 reads (it ignores AWS_REGION)
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
            "CUTOUTS_STACK": self.stack_name,
        }

    def export_line(self) -> str:
        return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in self.environment().items())

    def describe(self) -> list[str]:
        return [
            f"endpoint     {self.endpoint_url}  (region {self.region}, access key {DUMMY_ACCESS_KEY}, "
            f"secret {DUMMY_SECRET_KEY})",
            f"bucket       {self.bucket}  (upload under {self.input_prefix}; results in "
            f"{self.output_prefix} and {self.failure_prefix})",
            f"queue        {self.queue_url}",
            f"dead-letter  {self.dlq_url}",
            f"table        {self.table}",
            f"stack        {self.stack_name}  (its outputs name all of the above)",
            f"gateway      {self.gateway}",
        ]


def default_state_file() -> Path:
    """One per user, in the temporary folder: a stack lives no longer than the ``up`` that runs it."""
    return Path(tempfile.gettempdir()) / f"cutouts-local-{os.getuid()}" / "stack.json"


def write_state(session: StackSession, path: Path) -> None:
    """Written whole and then renamed, so ``upload`` never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(asdict(session), indent=2) + "\n")
    partial.chmod(0o600)
    partial.replace(path)


def remove_state(path: Path, pid: int) -> None:
    """Remove the state file if it is still ours (another ``up`` may have replaced it)."""
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(path: Path) -> StackSession:
    start = "start one in another shell with: python -m local up"
    try:
        raw = json.loads(path.read_text())
        session = StackSession(**raw)
    except FileNotFoundError:
        raise SessionError(f"no local stack is running (no {path}); {start}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise SessionError(f"cannot read {path} ({exc}); {start}") from None
    if not _alive(session.pid):
        raise SessionError(f"the local stack that wrote {path} (process {session.pid}) has stopped; {start}")
    return session


def publish_stack_outputs(cloudformation: Any, session: StackSession) -> None:
    """Register a stack in moto whose outputs are the deployed stack's, so ``--stack`` finds the local one.

    CloudFormation wants at least one resource: a wait-condition handle creates nothing else.
    """
    outputs = {
        c.OUTPUT_BUCKET_NAME: session.bucket,
        c.OUTPUT_QUEUE_URL: session.queue_url,
        c.OUTPUT_DLQ_URL: session.dlq_url,
        c.OUTPUT_TABLE_NAME: session.table,
        c.OUTPUT_INPUT_LOCATION: f"s3://{session.bucket}/{session.input_prefix}",
        c.OUTPUT_OUTPUT_LOCATION: f"s3://{session.bucket}/{session.output_prefix}",
        c.OUTPUT_FAILURE_LOCATION: f"s3://{session.bucket}/{session.failure_prefix}",
    }
    template = {
        "Resources": {"LocalStackMarker": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=session.stack_name, TemplateBody=json.dumps(template))


def session_of(pipeline: Any, gateway: str) -> StackSession:
    """The facts of a started :class:`~local.pipeline.LocalPipeline`, for printing and the state file."""
    res, opts = pipeline.resources, pipeline.options
    return StackSession(
        pid=os.getpid(),
        endpoint_url=res.endpoint_url,
        region=REGION,
        stack_name=STACK_NAME,
        bucket=res.bucket,
        queue_url=res.queue_url,
        dlq_url=res.dlq_url,
        table=res.table_name,
        input_prefix=opts.input_prefix,
        output_prefix=opts.output_prefix,
        failure_prefix=opts.failure_prefix,
        gateway=gateway,
    )
