"""Chaos on the local stack: many inputs, bad ones mixed in, every gateway fault at once, forgers.

`make test` runs it with CUTOUTS_CHAOS_INPUTS (default 60) inputs; `make chaos` with 400.
"""

from __future__ import annotations

import io
import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import urllib3
from PIL import Image, ImageDraw

from cutouts import keys
from local.gateway_emulator import FaultConfig
from local.pipeline import LocalOptions, LocalPipeline

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

INPUTS = int(os.environ.get("CUTOUTS_CHAOS_INPUTS", "60"))
MAX_IMAGE_BYTES = 300_000


class EvilHost:
    """A host no request of ours may ever reach; it counts what it receives."""

    def __init__(self) -> None:
        host = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                host.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", "8")
                self.end_headers()
                self.wfile.write(b"\x89PNG\r\n\x1a\n")

            do_POST = do_GET  # noqa: N815

        self.hits = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/media/stolen.png"

    def stop(self) -> None:
        self.server.shutdown()


def _image(rng: random.Random, fmt: str = "PNG") -> bytes:
    background = tuple(rng.randrange(200, 256) for _ in range(3))
    subject = tuple(rng.randrange(0, 120) for _ in range(3))
    image = Image.new("RGB", (96, 96), background)
    x, y = rng.randrange(15, 35), rng.randrange(15, 35)
    ImageDraw.Draw(image).ellipse((x, y, x + 40, y + 40), fill=subject)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def _bad_inputs(rng: random.Random) -> list[tuple[str, bytes, str]]:
    jpeg = _image(rng, "JPEG")
    noise = Image.frombytes("RGB", (400, 400), rng.randbytes(400 * 400 * 3))
    huge = io.BytesIO()
    noise.save(huge, "PNG")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    return [
        ("empty.jpg", b"", "empty-file"),
        ("readme.jpg", b"this is text, not a picture\n" * 10, "unsupported-type"),
        ("invoice.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "unsupported-type"),
        ("half.jpg", jpeg[: len(jpeg) // 2], "truncated-image"),
        ("huge.png", huge.getvalue(), "too-large"),
        ("animated.gif", gif.getvalue(), "unsupported-type"),
    ]


WEIRD_NAMES = ["with space.png", "a+b.png", "100%.png", "ünïcødé ✓.png", "deep/er/and/deeper/x.png"]


class Forger:
    """Sends forged and replayed callbacks while the real ones flow; records every answer."""

    def __init__(self, pipeline: LocalPipeline, evil: EvilHost, rng: random.Random) -> None:
        self.pipeline, self.evil, self.rng = pipeline, evil, rng
        self.http = urllib3.PoolManager()
        self.forged: list[tuple[str, int]] = []
        self.untrusted_bodies: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _post(self, url: str, body: bytes) -> int:
        return self.http.request(
            "POST", url, body=body, headers={"Content-Type": "application/json"}, retries=False, timeout=10
        ).status

    def _loop(self) -> None:
        base = self.pipeline.callback_base_url
        while not self._stop.wait(0.05):
            jobs = [j for j in self.pipeline.emulator.stats()["jobs"].items() if j[1]["webhook_url"]]
            if len(jobs) < 2:
                continue
            (rid_a, a), (rid_b, _) = self.rng.sample(jobs, 2)
            url = urlsplit(a["webhook_url"])
            query = dict(parse_qsl(url.query))
            genuine = f"{base}{url.path}"
            body_b = json.dumps({"request_id": rid_b, "status": "COMPLETED", "output": {"media_url": [self.evil.url]}})
            body_a = json.dumps({"request_id": rid_a, "status": "COMPLETED", "output": {"media_url": [self.evil.url]}})
            attempts = {
                "wrong token": (f"{genuine}?{urlencode(query | {'token': 'A' * 43})}", body_a),
                "no token": (f"{genuine}?attempt={query['attempt']}", body_a),
                "other attempt": (f"{genuine}?{urlencode(query | {'attempt': int(query['attempt']) + 1})}", body_a),
                "another job's request": (f"{genuine}?{url.query}", body_b),
                "unknown job": (f"{base}/callback/{'0' * 32}?{url.query}", body_a),
                "invalid json": (f"{genuine}?{url.query}", "{not json"),
                "unknown status": (f"{genuine}?{url.query}", json.dumps({"request_id": rid_a, "status": "DONE"})),
            }
            for name, (target, body) in attempts.items():
                self.forged.append((name, self._post(target, body.encode())))
            # The genuine URL with a body naming another media host: accepted as a nudge, never trusted.
            self.untrusted_bodies.append(self._post(f"{genuine}?{url.query}", body_a.encode()))


def test_chaos_every_input_accounted_charged_once_nobody_let_in():
    rng = random.Random(20261129)
    faults = FaultConfig(
        processing_delay=0.05,
        rate_429=0.2,
        retry_after_seconds=1,
        rate_5xx=0.15,
        rate_failed=0.1,
        rate_error=0.15,
        rate_stuck=0.05,
        rate_drop_callback=0.3,
        rate_duplicate_callback=0.3,
        rate_late_callback=0.2,
        late_callback_delay=2.0,
        seed=11,
    )
    options = LocalOptions(
        faults=faults,
        max_age_seconds=25,
        stale_after_seconds=1,
        in_doubt_grace_seconds=3,
        max_image_bytes=MAX_IMAGE_BYTES,
        emulator_workers=6,
    )
    evil = EvilHost()
    with LocalPipeline(options) as pipeline:
        forger = Forger(pipeline, evil, rng)
        forger.start()
        expected_reason: dict[str, str] = {}
        overwritten: dict[str, tuple[str, str]] = {}
        maybe_deleted: list[str] = []
        inputs: list[str] = []
        bad = _bad_inputs(rng)
        for i in range(INPUTS):
            kind = i % 10
            if kind in (0, 1):  # a bad input
                name, data, reason = bad[i % len(bad)]
                key = pipeline.upload(f"bad/{i}-{name}", data)
                expected_reason[key] = reason
            elif kind == 2:  # a good image under a difficult name
                key = pipeline.upload(f"weird/{i}/{WEIRD_NAMES[i % len(WEIRD_NAMES)]}", _image(rng))
            elif kind == 3 and i % 20 == 3:  # overwritten while in flight: the newest version must win
                key = pipeline.upload(f"overwrite/{i}.png", _image(rng))
                pipeline.upload(f"overwrite/{i}.png", _image(rng))
                head = pipeline.s3().head_object(Bucket=pipeline.resources.bucket, Key=key)
                overwritten[key] = (head["VersionId"], head["ETag"].strip('"'))
            elif kind == 3:  # deleted right after upload
                key = pipeline.upload(f"deleted/{i}.png", _image(rng))
                pipeline.s3().delete_object(Bucket=pipeline.resources.bucket, Key=key)
                maybe_deleted.append(key)
            else:
                key = pipeline.upload(f"good/{i}.{'jpg' if i % 2 else 'png'}", _image(rng, "JPEG" if i % 2 else "PNG"))
            inputs.append(key)

        accounting = pipeline.wait(inputs, timeout=150)
        time.sleep(2.5)  # let late and duplicated callbacks land after the last result
        forger.stop()
        stats = pipeline.emulator.stats()

        # Every input ended as exactly one of: a cutout, or a failure report.
        assert accounting.unaccounted == [], accounting.unaccounted
        # Each object version was charged at most once.
        assert max(stats["charged_by_source"].values()) == 1, {
            s: n for s, n in stats["charged_by_source"].items() if n > 1
        }
        # Nobody was let in, and nothing was fetched from a host that is not the gateway's.
        assert evil.hits == 0
        assert forger.forged, "the forger sent nothing"
        refused = [(name, code) for name, code in forger.forged if not 400 <= code < 500]
        assert refused == [], refused[:10]
        # Bad inputs carry their reason; good ones are real cutouts.
        s3, bucket, opts = pipeline.s3(), pipeline.resources.bucket, pipeline.options
        for key, reason in expected_reason.items():
            report = json.loads(
                s3.get_object(Bucket=bucket, Key=keys.failure_key_for(key, opts.input_prefix, opts.failure_prefix))[
                    "Body"
                ].read()
            )
            assert report["reason"] == reason, (key, report)
        for key, newest in overwritten.items():
            if key in accounting.cutouts:  # (moto's events carry no versionId: the job keys on the ETag then)
                head = s3.head_object(
                    Bucket=bucket, Key=keys.output_key_for(key, opts.input_prefix, opts.output_prefix)
                )
                assert head["Metadata"]["source-version"] in newest, key
        for key in accounting.cutouts[:20]:
            body = s3.get_object(Bucket=bucket, Key=keys.output_key_for(key, opts.input_prefix, opts.output_prefix))
            image = Image.open(io.BytesIO(body["Body"].read()))
            assert image.mode == "RGBA" and image.getpixel((2, 2))[3] == 0
        print(
            f"\nchaos: {accounting.summary()}; gateway accepted {stats['accepted']}, rejected {stats['rejected']}, "
            f"charged {stats['charged']}, errors {stats['errors']}, stuck {stats['stuck']}, "
            f"callbacks dropped {stats['callbacks_dropped']} duplicated {stats['callbacks_duplicated']} "
            f"late {stats['callbacks_late']}; forged callbacks refused {len(forger.forged)}/{len(forger.forged)}; "
            f"untrusted bodies {len(forger.untrusted_bodies)}; evil host hits {evil.hits}; "
            f"deleted-before-processing {len(maybe_deleted)}, overwritten {len(overwritten)}"
        )
    evil.stop()
