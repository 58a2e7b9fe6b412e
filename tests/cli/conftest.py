"""Fixtures for the operations CLI tests."""

import pytest
from cli_kit import Cli


@pytest.fixture
def cli_for(capsys):
    """``cli_for(pipeline)("status")`` runs the CLI against that local stack and returns its JSON."""
    return lambda pipeline: Cli(pipeline, capsys)
