"""cdk.json sets the feature flags a new CDK app gets today (`cdk init` copies aws-cdk-lib's list)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import aws_cdk

ROOT = Path(__file__).resolve().parents[2]
# Flags deliberately left at another value, with the reason (docs/development.md says the same).
LEFT_OFF: dict[str, str] = {}


def recommended_flags() -> dict[str, Any]:
    """aws-cdk-lib's recommended-feature-flags.json, read from the installed package's jsii tarball."""
    (tarball,) = Path(aws_cdk.__file__).parent.joinpath("_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(tarball) as archive:
        for member in archive:
            if member.name == "package/recommended-feature-flags.json":
                extracted = archive.extractfile(member)
                assert extracted is not None
                return dict(json.load(extracted))
    raise AssertionError(f"{tarball} has no recommended-feature-flags.json")


def test_cdk_json_sets_every_recommended_feature_flag() -> None:
    # Given the flags `npx aws-cdk@2 init` writes for the installed aws-cdk-lib
    recommended = recommended_flags()
    # When cdk.json's context is read
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    # Then each is set to the recommended value, unless left off with a reason
    differing = {
        flag: (context.get(flag), value)
        for flag, value in recommended.items()
        if flag not in LEFT_OFF and context.get(flag) != value
    }
    assert len(recommended) > 50 and differing == {}
