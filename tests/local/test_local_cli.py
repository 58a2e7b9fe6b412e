"""``python -m local`` as a user meets it: run as a subprocess, its exit code, its few lines, no traceback.

Argument mistakes are refused before anything starts (fast); a stop signal ends a run or an ``up``
with one line, 130 or 143, no process left behind and the moto server's port free again.
"""

from __future__ import annotations

import signal

import pytest
from process_kit import (
    ROOT,
    SAMPLES,
    alive,
    assert_short_and_clean,
    children_of,
    images,
    local,
    moto_port,
    port_is_free,
    read_until,
    start,
    wait_until,
)

# --- item 4: mistakes refused before anything starts ------------------------------------------


def test_run_refuses_an_output_that_is_a_file(tmp_path):
    # Given an --output that is a file
    target = tmp_path / "out.txt"
    target.write_text("not a folder")
    # When the run starts
    result = local("run", "--input", str(SAMPLES), "--output", str(target))
    # Then it stops at once with one line, and the file is untouched
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, "is a file", str(target))
    assert target.read_text() == "not a folder"


def test_run_with_an_empty_input_says_there_is_nothing_to_do(tmp_path):
    # Given an empty input folder
    (tmp_path / "empty").mkdir()
    # When the run starts
    result = local("run", "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "out"))
    # Then it says there is nothing to do, starts nothing and creates no output folder
    assert result.returncode == 0
    assert_short_and_clean(result.stderr, "nothing to do")
    assert "Local stack up" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("timeout", ["0", "-1", "nan"])
def test_run_refuses_a_timeout_that_is_not_positive(tmp_path, timeout):
    result = local("run", "--input", str(SAMPLES), "--output", str(tmp_path / "out"), "--timeout", timeout)
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, "--timeout must be a positive number")


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("localhost:8765", "needs a scheme"),
        ("127.0.0.1:8765", "needs a scheme"),
        ("http://gateway.example.com", "use https://gateway.example.com"),
    ],
)
def test_run_refuses_a_gateway_url_it_cannot_use_and_says_what_works(tmp_path, url, hint):
    # Given a gateway URL without a scheme, or plain http to another machine
    result = local("run", "--input", str(SAMPLES), "--output", str(tmp_path / "out"), "--gateway-url", url)
    # Then one line says what works (http for this machine, as the README's emulator example)
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, hint, "http://127.0.0.1:PORT" if "scheme" in hint else "https://")


def test_run_reports_every_mistake_at_once_one_line_each(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("")
    result = local("run", "--input", str(SAMPLES), "--output", str(target), "--timeout", "-1", "--gateway-url", "x")
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, "--timeout", "--gateway-url", "is a file", lines=3)


def test_run_refuses_an_output_holding_other_files_and_says_how_to_force(tmp_path):
    # Given an --output folder holding something a run did not write
    output = tmp_path / "photos"
    output.mkdir()
    (output / "holiday.jpg").write_bytes(b"mine")
    # When the run starts
    result = local("run", "--input", str(SAMPLES), "--output", str(output))
    # Then it refuses, names the file and the flag that forces it, and deletes nothing
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, "holiday.jpg", "--replace-output")
    assert (output / "holiday.jpg").read_bytes() == b"mine"


@pytest.mark.parametrize("where", ["inside the input", "the current folder"])
def test_run_refuses_an_output_that_would_upload_or_delete_the_users_files(tmp_path, where):
    # Given an --output inside the input (the next run would upload the results), or one holding
    # the current folder (--replace-output would delete it)
    source = images(tmp_path / "in", 1)
    output = source / "out" if where == "inside the input" else ROOT.parent
    # When the run starts, even with --replace-output
    result = local("run", "--input", str(source), "--output", str(output), "--replace-output")
    # Then it refuses in one line and nothing is touched
    assert result.returncode == 2
    assert_short_and_clean(result.stderr, f"--output {output}")
    assert sorted(p.name for p in source.iterdir()) == ["apple-0.jpg"]


@pytest.mark.e2e
def test_run_replaces_a_previous_runs_results(tmp_path):
    # Given an output folder left by a previous run, with a cutout this run will not produce
    output = tmp_path / "out"
    (output / "cutouts").mkdir(parents=True)
    (output / "cutouts" / "stale.png.png").write_bytes(b"old")
    source = images(tmp_path / "in", 1)
    # When the run finishes
    result = local("run", "--input", str(source), "--output", str(output), "--timeout", "60")
    # Then the folder holds this run's results only
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (output / "cutouts").iterdir()) == ["apple-0.jpg.png"]
    assert "Replaced the previous results" in result.stderr


# --- item 3: stopping is clean --------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_on_run_stops_every_child_and_frees_the_port(tmp_path, stop, code):
    # Given a run under way (its local stack is up)
    source = images(tmp_path / "in", 30)
    run = start("run", "--input", str(source), "--output", str(tmp_path / "out"), "--timeout", "120")
    try:
        line = read_until(run.stderr, "Local stack up")[-1]
        port, children = moto_port(line), children_of(run.pid)
        assert children, "the moto server runs as a child process"
        # When it is sent the signal
        run.send_signal(stop)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    # Then it exits 128 + the signal, says in one line what was interrupted, with no traceback
    assert run.returncode == code, stderr
    assert_short_and_clean(stderr, f"interrupted by {stop.name}", "uploaded")
    # And no child survives, and the moto server's port is free again
    assert wait_until(lambda: not any(alive(pid) for pid in children))
    assert wait_until(lambda: port_is_free(port))


@pytest.mark.e2e
def test_moto_server_exits_when_its_parent_is_killed_without_a_chance_to_stop_it(tmp_path):
    # Given a local stack whose process is killed outright (no handler runs on SIGKILL)
    up = start("up", "--state", str(tmp_path / "stack.json"))
    try:
        port = moto_port(read_until(up.stdout, "endpoint")[-1])
        children = children_of(up.pid)
        up.kill()
        up.wait(timeout=10)
    finally:
        up.kill()
    # Then the moto server notices within seconds and exits: no orphan holds the port
    assert children
    assert wait_until(lambda: not any(alive(pid) for pid in children), timeout=10)
    assert wait_until(lambda: port_is_free(port))
