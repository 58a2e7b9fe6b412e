"""What a cutout file is: its name's ending, its content type, and how its bytes begin.

The gateway delivers PNG cutouts; every place that names, checks or labels a cutout takes its
format from here, so a second output format is a new value, not edits in every module.
"""

from __future__ import annotations

from typing import NamedTuple


class OutputFormat(NamedTuple):
    name: str
    extension: str  # appended to the source key's whole name (cat.jpg -> cat.jpg.png)
    content_type: str
    signature: bytes  # every file of this format starts with these bytes


PNG = OutputFormat("png", ".png", "image/png", b"\x89PNG\r\n\x1a\n")
CUTOUT = PNG  # what the gateway delivers and what lands under the output prefix
