"""Fetch a result from a URL the outside world gave us, and stream it into S3.

``media_url`` arrives in a callback body or a status answer. It is fetched only over https
(plain http only when the local stack says so), only from an allow-listed host and port (a bare
host allows only the scheme's default port), only from public addresses (an explicitly
allow-listed IP literal is the one exception, for the local stack), following redirects only to
URLs that pass the same checks, within a size cap and a time budget, and the bytes must be a
PNG. The connection goes to the address we vetted, so a DNS answer that changes between check
and connect (rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError

from cutouts.output_format import CUTOUT, OutputFormat

MAX_REDIRECTS = 3
PART_SIZE = 8 * 1024 * 1024
DEFAULT_PORTS = {"https": 443, "http": 80}


class MediaRejected(ValueError):
    """The URL or its content breaks a rule: retrying will not help."""


class MediaUnavailable(RuntimeError):
    """The host did not deliver (time-out, 5xx): a later try may work."""


class MediaPolicy(NamedTuple):
    allowed_hosts: frozenset[str]  # "host" (the scheme's default port only) or "host:port"
    max_bytes: int
    timeout_seconds: float
    allow_http: bool = False
    expected: OutputFormat = CUTOUT  # the media must be a file of this format
    # Absolute time.monotonic() by which the download must be over, whatever timeout_seconds
    # allows: the webhook sets it from its invocation's remaining time (API Gateway gives up at 29 s).
    deadline: float | None = None


Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class VettedTarget(NamedTuple):
    scheme: str
    host: str
    port: int
    address: str
    path: str


def vet_url(url: str, policy: MediaPolicy, resolve: Resolver = system_resolver) -> VettedTarget:
    """Check a URL against the policy and pick the address to connect to, or raise MediaRejected."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed "[" in the host: a malformed result, not a crash
        raise MediaRejected(f"media URL is malformed: {exc}") from None
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not policy.allow_http):
        raise MediaRejected(f"media URL scheme {parts.scheme!r} is not allowed (https only)")
    if parts.username or parts.password:
        raise MediaRejected("media URL must not carry credentials")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise MediaRejected("media URL has no host")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise MediaRejected("media URL has an invalid port") from None
    if not _allow_listed(host, port, parts.scheme, policy.allowed_hosts):
        raise MediaRejected(f"media host {host!r} port {port} is not allow-listed")
    explicitly_listed_ip = _is_ip(host)
    try:
        addresses = resolve(host, port)
    except OSError:
        raise MediaUnavailable(f"media host {host!r} does not resolve") from None
    if not addresses:
        raise MediaUnavailable(f"media host {host!r} has no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        configured = explicitly_listed_ip and ip == ipaddress.ip_address(host)
        local_loopback = policy.allow_http and ip.is_loopback  # local stack only: its gateway runs here
        if not ip.is_global and not configured and not local_loopback:
            raise MediaRejected(f"media host {host!r} resolves to a non-public address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return VettedTarget(parts.scheme, host, port, addresses[0], path)


def _allow_listed(host: str, port: int, scheme: str, allowed: frozenset[str]) -> bool:
    """A bare host allows only its scheme's default port: an allow-listed name must not become
    a way to reach whatever else listens on that machine (ssh on :22, an admin port)."""
    if f"{host}:{port}" in allowed:
        return True
    return host in allowed and port == DEFAULT_PORTS[scheme]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _CappedStream:
    """A file-like view of the response that enforces the size cap, the deadline and the format check."""

    def __init__(self, response: Any, max_bytes: int, deadline: float, expected: OutputFormat) -> None:
        self._response = response
        self._expected = expected
        self._max = max_bytes
        self._deadline = deadline
        self.bytes_read = 0
        self._checked = False
        self.cut_off = False  # set by the watchdog when it shut the connection at the deadline

    def read(self, amount: int = -1) -> bytes:
        if time.monotonic() >= self._deadline:
            raise MediaUnavailable("media download exceeded its time budget")
        chunk = self._response.read(amount if amount and amount > 0 else PART_SIZE)
        if self.cut_off or time.monotonic() >= self._deadline:  # a cut-off read ends early: not the end
            raise MediaUnavailable("media download exceeded its time budget")
        if not chunk and not self._checked:
            raise MediaRejected("media is empty")
        self.bytes_read += len(chunk)
        if self.bytes_read > self._max:
            raise MediaRejected(f"media is larger than the cap of {self._max} bytes")
        if not self._checked and chunk:
            signature = self._expected.signature
            if not chunk.startswith(signature[: len(chunk)]) or len(chunk) < len(signature):
                raise MediaRejected(f"media is not a {self._expected.name.upper()} image")
            self._checked = True
        return chunk


def _put_in_one_part(
    stream: _CappedStream, length: int, s3: Any, bucket: str, key: str, metadata: dict[str, str], content_type: str
) -> None:
    """A declared body of one part or less: read it, then one PutObject.

    s3transfer would buffer the same part before its single PutObject; doing it here skips its
    transfer machinery (about 2 ms a cutout), and memory stays bounded by the part size.
    """
    chunks = []
    while chunk := stream.read(PART_SIZE):
        chunks.append(chunk)
    body = b"".join(chunks)
    if len(body) != length:
        raise MediaUnavailable(f"media download broke off after {len(body)} of {length} bytes")
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata)


def _timeout_until(deadline: float, seconds: float) -> urllib3.Timeout:
    """The connection's time-outs, never reaching past the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaUnavailable("media download exceeded its time budget")
    return urllib3.Timeout(connect=min(3.0, seconds, left), read=min(seconds, left))


def _watchdog(stream: _CappedStream, response: Any, deadline: float) -> threading.Timer:
    """Shut the connection at the deadline: a host trickling bytes would otherwise keep each
    read (up to a part) alive far past it, since the read time-out counts only silences."""

    def cut_off() -> None:
        stream.cut_off = True
        shutdown = getattr(response, "shutdown", None)  # urllib3 >= 2.3
        try:
            if shutdown is not None:
                shutdown()
        except (OSError, ValueError, RuntimeError):  # already closed or released: nothing to stop
            pass

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut_off)
    timer.daemon = True
    timer.start()
    return timer


def _open(target: VettedTarget, policy: MediaPolicy, timeout: urllib3.Timeout) -> Any:
    common: dict[str, Any] = {"timeout": timeout, "retries": False, "maxsize": 1}
    if target.scheme == "https":
        pool: Any = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            **common,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, **common)
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    return pool.urlopen(
        "GET",
        target.path,
        headers={"Host": host_header, "Accept": policy.expected.content_type},
        redirect=False,
        preload_content=False,
        assert_same_host=False,
    )


def fetch_media_to_s3(
    url: str,
    policy: MediaPolicy,
    s3: Any,
    bucket: str,
    key: str,
    metadata: dict[str, str],
    resolve: Resolver = system_resolver,
) -> int:
    """Copy the PNG at ``url`` into ``s3://bucket/key`` (one PUT up to a part, streamed in parts beyond).

    Returns its size in bytes. Memory stays bounded by one part whatever the image size. The
    whole download (redirects included) ends by three time-outs or ``policy.deadline``, whichever
    comes first; past it, MediaUnavailable (a later try may work) and nothing is written.
    """
    deadline = time.monotonic() + policy.timeout_seconds * 3
    if policy.deadline is not None:
        deadline = min(deadline, policy.deadline)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        target = vet_url(current, policy, resolve)
        try:
            response = _open(target, policy, _timeout_until(deadline, policy.timeout_seconds))
        except HTTPError as exc:
            raise MediaUnavailable(f"media download failed: {type(exc).__name__}") from None
        if response.status in (301, 302, 303, 307, 308):
            location = response.headers.get("Location")
            response.release_conn()
            if not location:
                raise MediaRejected("media redirect without a Location")
            try:
                current = urljoin(current, location)
            except ValueError:
                raise MediaRejected("media redirect to a malformed URL") from None
            continue
        try:
            if response.status >= 500 or response.status == 429:
                raise MediaUnavailable(f"media host answered {response.status}")
            if response.status != 200:
                raise MediaRejected(f"media host answered {response.status}")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > policy.max_bytes:
                raise MediaRejected(f"media is {length} bytes, over the cap of {policy.max_bytes}")
            stream = _CappedStream(response, policy.max_bytes, deadline, policy.expected)
            watchdog = _watchdog(stream, response, deadline)
            try:
                if length and length.isdigit() and int(length) <= PART_SIZE:
                    _put_in_one_part(stream, int(length), s3, bucket, key, metadata, policy.expected.content_type)
                else:
                    from boto3.s3.transfer import TransferConfig  # boto3 is loaded by the caller's client

                    config = TransferConfig(
                        multipart_threshold=PART_SIZE,
                        multipart_chunksize=PART_SIZE,
                        use_threads=False,
                        max_concurrency=1,
                    )
                    s3.upload_fileobj(
                        stream,
                        bucket,
                        key,
                        Config=config,
                        ExtraArgs={"ContentType": policy.expected.content_type, "Metadata": metadata},
                    )
            except HTTPError as exc:
                raise MediaUnavailable(f"media download broke off: {type(exc).__name__}") from None
            except Exception as exc:  # s3transfer wraps what our stream raised
                cause = exc if isinstance(exc, MediaRejected | MediaUnavailable) else exc.__context__
                if isinstance(cause, MediaRejected | MediaUnavailable):
                    raise cause from None
                raise
            finally:
                watchdog.cancel()
            return stream.bytes_read
        finally:
            response.release_conn()
    raise MediaRejected(f"media URL redirected more than {MAX_REDIRECTS} times")
