"""What the reference fixes (paths, headers, the media type) and our defaults, shared by every part.

One place, so the HTTP handler, the job accounting and the command line cannot disagree on a path.
"""

from __future__ import annotations

import re

DEFAULT_MODEL_PATH = "/bria-rmbg-2-0-682/v1/bria-rmbg-2-0-request"
STATUS_PATH = "/v2/requests/status/"
MEDIA_PATH = "/media/"
STATS_PATH = "/_emulator/stats"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
WEBHOOK_HEADER = "X-Webhook-URL"
MEDIA_TYPE = "application/octet-stream"
DEFAULT_API_KEY = "local-test-key"
DEFAULT_PORT = 8765

MAX_BODY_BYTES = 1024 * 1024

MODEL_ROUTE = re.compile(r"^/([^/]+)/v1/[^/]+$")
