"""The output profiles the stack deploys: read and validated at synth, shipped as a small layer.

Why a layer and not an environment variable: a profiles file easily exceeds Lambda's 4 KB
environment limit, and a layer is versioned with the deployment (an SSM parameter would add a
network call, a cache and a permission to every cold start). The layer holds one file, the
canonical JSON (``Profiles.to_json``), so the functions read exactly what synth validated, and its
asset hash changes whenever the profiles do, which redeploys the functions that read it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cutouts.profiles import ProfileError, Profiles
from infra.config import ConfigError, StackConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILES_FILE = "profiles.json"
# Layers are unpacked under /opt: the functions read the file named by CUTOUTS_PROFILES_PATH.
LAYER_DIR = "cutouts-profiles"
LAYER_FILE = "profiles.json"
PROFILES_PATH_IN_LAMBDA = f"/opt/{LAYER_DIR}/{LAYER_FILE}"


def profiles_path(config: StackConfig) -> Path:
    path = Path(config.profiles_file)
    return path if path.is_absolute() else REPO_ROOT / path


def load_profiles(config: StackConfig) -> Profiles:
    """The validated profiles; no file at the default path means today's one PNG cutout.

    A file named explicitly (``profilesFile``) must exist. Errors name the key and the profile,
    output and field (ProfileError's message).
    """
    path = profiles_path(config)
    if not path.exists() and config.profiles_file == DEFAULT_PROFILES_FILE:
        return Profiles.default()
    try:
        return Profiles.load(path)
    except ProfileError as exc:
        raise ConfigError("profilesFile", f"{config.profiles_file}: {exc}") from None


def profiles_layer(scope: Construct, profiles: Profiles) -> lambda_.LayerVersion:
    """A layer holding only the canonical profiles JSON (see the module's docstring)."""
    folder = Path(tempfile.mkdtemp(prefix="cutouts-profiles-"))
    (folder / LAYER_DIR).mkdir()
    (folder / LAYER_DIR / LAYER_FILE).write_text(profiles.to_json(), encoding="utf-8")
    return lambda_.LayerVersion(
        scope,
        "ProfilesLayer",
        code=lambda_.Code.from_asset(str(folder)),
        description="Cutouts: the deployed output profiles (canonical JSON)",
    )
