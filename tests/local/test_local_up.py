"""``python -m local up`` as the README shows it: start it, paste its line, drive it with the CLI, stop it."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from process_kit import (
    ROOT,
    alive,
    assert_short_and_clean,
    children_of,
    clean_env,
    images,
    local,
    moto_port,
    port_is_free,
    read_until,
    start,
    wait_until,
)

from local.stack_commands import READY_LINE
from local.stack_session import StackSession


def exported(line: str) -> dict[str, str]:
    """``export A=1 B=2`` as a shell would set it."""
    words = shlex.split(line)
    assert words[0] == "export"
    return dict(word.split("=", 1) for word in words[1:])


def cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cutouts_cli", *argv],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.e2e
def test_up_serves_the_cli_and_uploads_until_stopped(tmp_path):
    # Given `python -m local up`, ready once it prints the line to paste
    state = tmp_path / "stack.json"
    up = start("up", "--state", str(state))
    try:
        printed = read_until(up.stdout, "export ")
        assert READY_LINE in printed
        env = exported(printed[-1])
        port, children = moto_port(printed[0]), children_of(up.pid)

        # When the operations CLI runs with only that line's settings (no flags)
        status = cli("status", "--json", env=env)
        # Then it reads the local stack as it reads a deployed one
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["open_jobs"] == 0

        # When an image is uploaded into the running stack
        uploaded = local("upload", str(images(tmp_path / "in", 1)), "--state", str(state), "--wait", "60")
        # Then its cutout appears, as in the cloud
        assert uploaded.returncode == 0, uploaded.stderr
        assert "1 of 1 uploads have a result" in uploaded.stdout and "cutout" in uploaded.stdout
        facts = json.loads(state.read_text())
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        cutout = s3.get_object(Bucket=facts["bucket"], Key=f"{facts['output_prefix']}apple-0.jpg.png")
        assert cutout["ContentType"] == "image/png" and cutout["Body"].read()[:8] == b"\x89PNG\r\n\x1a\n"

        # And backfill sees that nothing needs a cutout, and status counts the job done
        backfill = cli("backfill", "--dry-run", env=env)
        assert backfill.returncode == 0, backfill.stderr
        assert "0 of 1 objects" in " ".join(backfill.stdout.split())
        status = cli("status", "--json", env=env)
        assert json.loads(status.stdout)["counts"]["COMPLETED"] == 1

        # When it is stopped with Ctrl-C
        up.send_signal(signal.SIGINT)
        _, stderr = up.communicate(timeout=60)
    finally:
        up.kill()
    # Then it says so in one line, exits 130, and leaves no process, port or state file behind
    assert up.returncode == 130, stderr
    assert_short_and_clean(stderr, "stopped the local stack on SIGINT", "1 cutouts")
    assert not state.exists()
    assert wait_until(lambda: not any(alive(pid) for pid in children))
    assert wait_until(lambda: port_is_free(port))


def test_upload_without_a_running_stack_says_how_to_start_one(tmp_path):
    result = local("upload", str(images(tmp_path / "in", 1)), "--state", str(tmp_path / "none.json"))
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, "no local stack is running", "python -m local up")


def test_upload_after_the_stack_stopped_says_so(tmp_path):
    # Given a state file whose `up` is gone (killed outright, so it could not remove the file)
    state = tmp_path / "stack.json"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    facts = dict.fromkeys(
        ("endpoint_url", "region", "stack_name", "bucket", "queue_url", "dlq_url", "table", "gateway"), "x"
    )
    facts.update(pid=int(gone.stdout), input_prefix="uploads/", output_prefix="cutouts/", failure_prefix="failed/")
    state.write_text(json.dumps(facts))
    # When a folder is uploaded
    result = local("upload", str(images(tmp_path / "in", 1)), "--state", str(state))
    # Then one line says the stack has stopped and how to start one
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, "has stopped", "python -m local up")


def test_up_refuses_a_profiles_file_that_does_not_exist(tmp_path):
    result = local("up", "--profiles", str(tmp_path / "missing.json"), "--state", str(tmp_path / "s.json"))
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, "--profiles", "is not a file")


def test_up_refuses_a_gateway_url_without_a_scheme(tmp_path):
    result = local("up", "--gateway-url", "localhost:8765", "--state", str(tmp_path / "s.json"))
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, "needs a scheme")
    assert not Path(tmp_path / "s.json").exists()


def test_readme_session_is_what_up_prints_and_the_tests_run():
    # Given the README's local session
    readme = (ROOT / "README.md").read_text()
    session = StackSession(0, "http://127.0.0.1:1", "us-east-1", "Cutouts-local", *["x"] * 4, "u/", "c/", "f/", "g")
    # Then it shows the ready line up prints, an export of the very variables up exports,
    # and the commands the session test runs
    assert READY_LINE in readme
    export = next(line for line in readme.splitlines() if line.startswith("export AWS_ENDPOINT_URL="))
    assert set(exported(export)) == set(session.environment())
    for command in ("python -m local up", "python -m local upload samples/images --wait 60", "backfill --dry-run"):
        assert command in readme
