"""Operations CLI for Cutouts: backfill existing images, see status, retry failures.

Run it as ``python -m cutouts_cli --help`` from the repository root.
"""

import sys
from pathlib import Path

# The Lambda code (functions/cutouts) is reused as-is: the same job store, keys and advice.
_FUNCTIONS = str(Path(__file__).resolve().parent.parent / "functions")
if _FUNCTIONS not in sys.path:
    sys.path.insert(0, _FUNCTIONS)
