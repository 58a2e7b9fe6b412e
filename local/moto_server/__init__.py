"""moto's server with fidelity fixes, for the guarantees our code rests on.

1. DynamoDB writes are atomic, as they are in DynamoDB. moto checks a ConditionExpression and
   then writes, with nothing between the two to stop a concurrent request on another server
   thread. Our "never paid twice" claim rests on that guarantee, so the stand-in must give it too.
2. S3 event records carry ``versionId`` and ``sequencer``, as S3's do. moto leaves both out, which
   would send the local stack down a path production never takes (jobs keyed on the ETag, no
   ordering of overwrites). Each object version gets an increasing sequencer when it is stored,
   under one lock with the store itself, so the sequencers order versions as the bucket does.

3. S3's limits, which moto does not enforce: a key longer than 1,024 bytes of UTF-8 is refused
   with 400 ``KeyTooLongError``, user metadata over 2 KB with 400 ``MetadataTooLarge``, and a
   CopyObject whose ``CopySourceIfMatch`` names another ETag with 412 ``PreconditionFailed``
   (moto copies whatever the ETag). Code that must keep within them is only tested if the
   stand-in refuses what S3 refuses.

Transient faults (:class:`AwsFaults`), off unless asked for: the functions talk to their own
port (``--functions-port``), where a seeded share of S3 and DynamoDB calls is answered with a
throttle or a 5xx, as AWS answers under load. The test harness keeps the main port, so its
uploads and final inspection never see a fault.

And repairs of cost, not behaviour, found by profiling the server under ``make bench``:
- ReceiveMessage checked each message's retention by building every queue attribute, which
  counts every message in the queue: receiving was quadratic in the queue's depth (a 500-image
  upload spent most of moto's CPU there). It reads the queue's retention period directly now.
- Every request listed moto's package directory (``os.listdir`` of ~150 folders) to find its
  backend; the list is read once.
- werkzeug wrote an access-log line per request; it is off (``CUTOUTS_MOTO_ACCESS_LOG=1`` for it).

``python -m local.moto_server -H 127.0.0.1 -p PORT [--functions-port PORT2 --fault-rate 0.04
--fault-reach 0.5 --fault-seed 7]`` runs it; ``GET /_cutouts/aws-faults`` on either port counts
the faults injected; a POST there of an :class:`AwsFaultConfig` as JSON changes them.
"""

# The parts, one concern each: fidelity (atomic DynamoDB writes, faithful S3 events), s3_limits
# (S3's key and metadata limits, CopySourceIfMatch), cost_repairs (moto's quadratic receive, its
# backend lookup), faults (AwsFaultConfig, the injecting middleware) and server (start-up and the
# command line; __main__ runs it).

from __future__ import annotations

from local.moto_server.cost_repairs import make_backend_lookup_cached, make_sqs_receive_linear
from local.moto_server.faults import FAULTS_PATH, AwsFaultConfig, AwsFaults
from local.moto_server.fidelity import make_dynamodb_writes_atomic, make_s3_events_faithful
from local.moto_server.s3_limits import (
    MAX_KEY_BYTES,
    MAX_USER_METADATA_BYTES,
    make_s3_limits_enforced,
    user_metadata_bytes,
)
from local.moto_server.server import main

__all__ = [
    "FAULTS_PATH",
    "MAX_KEY_BYTES",
    "MAX_USER_METADATA_BYTES",
    "AwsFaultConfig",
    "AwsFaults",
    "main",
    "make_backend_lookup_cached",
    "make_dynamodb_writes_atomic",
    "make_s3_events_faithful",
    "make_s3_limits_enforced",
    "make_sqs_receive_linear",
    "user_metadata_bytes",
]
