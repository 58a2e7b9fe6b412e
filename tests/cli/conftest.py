"""Fixtures for the operations CLI tests."""

import pytest
from cli_kit import Cli


@pytest.fixture
def cli_for(capsys):
    """``cli_for(pipeline)("status")`` runs the CLI against that local stack and returns its JSON."""
    return lambda pipeline: Cli(pipeline, capsys)


@pytest.fixture(autouse=True)
def _restore_environment():
    """LocalPipeline points this process's environment at its own moto server and settings, as Lambda
    would; put it back afterwards so tests that run later in the same process see theirs."""
    import os

    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    from cutouts import runtime

    runtime.reset()
