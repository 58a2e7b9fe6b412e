"""The local stack: the deployed handlers, wired the way AWS wires them, on one machine."""

import sys
from pathlib import Path

# The functions' asset root, as Lambda puts it on sys.path.
_FUNCTIONS = str(Path(__file__).resolve().parent.parent / "functions")
if _FUNCTIONS not in sys.path:
    sys.path.insert(0, _FUNCTIONS)
