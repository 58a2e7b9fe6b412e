"""fetch_media_to_s3 against real local HTTP hosts and a moto S3 server."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from functions_kit import Reply, cutout_png

from cutouts.safe_download import MediaPolicy, MediaRejected, MediaUnavailable, fetch_media_to_s3, vet_url

KEY = "cutouts/pets/cat.jpg.png"
META = {"source-key": "uploads/pets/cat.jpg", "request-id": "rid-1"}


def policy(*hosts: str, max_bytes: int = 1024 * 1024, allow_http: bool = True) -> MediaPolicy:
    return MediaPolicy(frozenset(hosts), max_bytes, timeout_seconds=2.0, allow_http=allow_http)


def fetch(cutouts, url: str, pol: MediaPolicy, resolve=None) -> int:
    kwargs = {"resolve": resolve} if resolve else {}
    return fetch_media_to_s3(url, pol, cutouts.s3, cutouts.bucket, KEY, META, **kwargs)


def test_png_from_the_allow_listed_host_is_streamed_into_s3(cutouts):
    # Given an allow-listed host serving a PNG
    png = cutout_png()
    cutouts.gateway.files["/out.png"] = Reply(200, png)
    # When it is fetched
    size = fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy(cutouts.gateway.host))
    # Then the exact bytes land in S3 as image/png with the metadata
    obj = cutouts.s3.get_object(Bucket=cutouts.bucket, Key=KEY)
    assert size == len(png) and obj["Body"].read() == png
    assert obj["ContentType"] == "image/png" and obj["Metadata"] == META


def test_plain_http_is_refused_unless_allowed(cutouts):
    cutouts.gateway.files["/out.png"] = Reply(200, cutout_png())
    with pytest.raises(MediaRejected, match="https"):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy(cutouts.gateway.host, allow_http=False))
    assert cutouts.gateway.count() == 0 and cutouts.keys() == []


def test_host_not_allow_listed_is_refused_without_contact(cutouts):
    cutouts.evil.files["/out.png"] = Reply(200, cutout_png())
    with pytest.raises(MediaRejected, match="allow-listed"):
        fetch(cutouts, cutouts.evil.base_url + "/out.png", policy(cutouts.gateway.host))
    assert cutouts.evil.count() == 0 and cutouts.keys() == []


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "10.0.0.7", "127.0.0.1", "192.168.1.2", "::1", "fd00::1", "100.64.0.1", "0.0.0.0"]
)
def test_allow_listed_name_resolving_to_a_private_address_is_refused(address):
    # Given an allow-listed host name whose DNS answer is not public
    def resolve(host, port):
        return [address]

    # When the URL is vetted
    # Then it is refused
    with pytest.raises(MediaRejected, match="non-public"):
        vet_url("https://media.example.com/out.png", policy("media.example.com", allow_http=False), resolve)


def test_loopback_name_is_refused_in_production_and_allowed_only_when_listed_locally():
    loopback = lambda h, p: ["127.0.0.1"]  # noqa: E731
    # production (https only): an allow-listed name that resolves to loopback is refused
    with pytest.raises(MediaRejected, match="non-public"):
        vet_url("https://localhost:8443/x.png", policy("localhost:8443", allow_http=False), loopback)
    # local stack (http allowed): loopback is reachable only through an allow-listed host
    assert vet_url("http://localhost:8443/x.png", policy("localhost:8443"), loopback).address == "127.0.0.1"
    with pytest.raises(MediaRejected, match="allow-listed"):
        vet_url("http://localhost:9999/x.png", policy("localhost:8443"), loopback)
    # and link-local stays refused even locally
    with pytest.raises(MediaRejected):
        vet_url("http://localhost:8443/x.png", policy("localhost:8443"), lambda h, p: ["169.254.169.254"])


def test_any_private_address_among_several_answers_is_refused():
    with pytest.raises(MediaRejected):
        vet_url(
            "https://media.example.com/x.png",
            policy("media.example.com"),
            lambda h, p: ["93.184.216.34", "169.254.169.254"],
        )


def test_public_answer_is_connected_to_the_vetted_address():
    target = vet_url(
        "https://media.example.com/v1/x.png?a=1", policy("media.example.com"), lambda h, p: ["93.184.216.34"]
    )
    assert (target.address, target.port, target.host, target.path) == (
        "93.184.216.34",
        443,
        "media.example.com",
        "/v1/x.png?a=1",
    )


def test_ip_literal_is_allowed_only_when_exactly_allow_listed(cutouts):
    png = cutout_png()
    cutouts.gateway.files["/out.png"] = Reply(200, png)
    url = cutouts.gateway.base_url + "/out.png"
    # another port of the same IP is not the allow-listed one
    with pytest.raises(MediaRejected):
        fetch(cutouts, url, policy(f"127.0.0.1:{cutouts.evil.port}"))
    assert cutouts.gateway.count() == 0
    # the exact host:port literal is allowed
    assert fetch(cutouts, url, policy(cutouts.gateway.host)) == len(png)


def test_redirect_to_a_host_not_allow_listed_is_refused_and_never_contacted(cutouts):
    # Given the allow-listed host redirects to another host
    cutouts.evil.files["/steal.png"] = Reply(200, cutout_png())
    cutouts.gateway.files["/out.png"] = Reply(302, b"", {"Location": cutouts.evil.base_url + "/steal.png"})
    # When the URL is fetched
    with pytest.raises(MediaRejected):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy(cutouts.gateway.host))
    # Then no request reaches the other host and nothing is written
    assert cutouts.evil.count() == 0 and cutouts.keys() == []


@pytest.mark.parametrize(
    "location", ["http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "http://user:pw@127.0.0.1/x.png"]
)
def test_redirect_to_metadata_or_odd_schemes_is_refused(cutouts, location):
    cutouts.gateway.files["/out.png"] = Reply(301, b"", {"Location": location})
    with pytest.raises(MediaRejected):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy(cutouts.gateway.host))


def test_redirect_within_the_allow_listed_host_is_followed(cutouts):
    png = cutout_png()
    cutouts.gateway.files["/out.png"] = Reply(307, b"", {"Location": "/real/out.png"})
    cutouts.gateway.files["/real/out.png"] = Reply(200, png)
    assert fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy(cutouts.gateway.host)) == len(png)


def test_redirect_loop_is_bounded(cutouts):
    cutouts.gateway.files["/loop.png"] = Reply(302, b"", {"Location": "/loop.png"})
    with pytest.raises(MediaRejected, match="redirected"):
        fetch(cutouts, cutouts.gateway.base_url + "/loop.png", policy(cutouts.gateway.host))
    assert cutouts.gateway.count() == 4


def test_declared_length_over_the_cap_is_refused_before_reading(cutouts):
    cutouts.gateway.files["/big.png"] = Reply(200, cutout_png() + b"\0" * 5000)
    with pytest.raises(MediaRejected, match="cap"):
        fetch(cutouts, cutouts.gateway.base_url + "/big.png", policy(cutouts.gateway.host, max_bytes=4096))
    assert cutouts.keys() == []


def test_streamed_body_without_length_over_the_cap_is_refused_and_not_written(cutouts):
    cutouts.gateway.files["/big.png"] = Reply(200, cutout_png() + b"\0" * 50_000, send_length=False)
    with pytest.raises(MediaRejected, match="cap"):
        fetch(cutouts, cutouts.gateway.base_url + "/big.png", policy(cutouts.gateway.host, max_bytes=20_000))
    assert cutouts.keys() == []


@pytest.mark.parametrize("body", [b"<html>not an image</html>", b"\xff\xd8\xff\xe0JPEG" + b"\0" * 100, b""])
def test_content_that_is_not_a_png_is_refused_and_nothing_written(cutouts, body):
    cutouts.gateway.files["/out.png"] = Reply(200, body)
    with pytest.raises(MediaRejected):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy(cutouts.gateway.host))
    assert cutouts.keys() == []


@pytest.mark.parametrize("code", [500, 503, 429])
def test_host_errors_are_unavailable_not_rejected(cutouts, code):
    cutouts.gateway.files["/out.png"] = Reply(code, b"busy")
    with pytest.raises(MediaUnavailable):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy(cutouts.gateway.host))


def test_slow_host_is_unavailable(cutouts):
    cutouts.gateway.files["/out.png"] = Reply(200, cutout_png(), delay=1.0)
    quick = MediaPolicy(frozenset({cutouts.gateway.host}), 1 << 20, timeout_seconds=0.3, allow_http=True)
    with pytest.raises(MediaUnavailable):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", quick)
    assert cutouts.keys() == []


@pytest.mark.parametrize("send_length", [True, False])
def test_multi_part_sized_png_is_streamed_whole(cutouts, send_length):
    # Given a 20 MB body that starts like a PNG (more than two 8 MB parts)
    body = cutout_png() + bytes(range(256)) * (20 * 1024 * 1024 // 256)
    cutouts.gateway.files["/huge.png"] = Reply(200, body, send_length=send_length)
    # When it is fetched with a cap above its size
    size = fetch(cutouts, cutouts.gateway.base_url + "/huge.png", policy(cutouts.gateway.host, max_bytes=64 << 20))
    # Then every byte is in S3
    stored = cutouts.s3.get_object(Bucket=cutouts.bucket, Key=KEY)["Body"].read()
    assert size == len(body) and len(stored) == len(body) and stored == body


def test_body_cut_short_of_its_declared_length_is_unavailable_and_not_written(cutouts):
    # Given a host that declares more bytes than it sends before closing
    png = cutout_png()
    cutouts.gateway.files["/out.png"] = Reply(
        200, png, headers={"Content-Length": str(len(png) + 1000)}, send_length=False
    )
    # When it is fetched
    # Then a later try may work, and no partial cutout is left in the bucket
    with pytest.raises(MediaUnavailable):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy(cutouts.gateway.host))
    assert cutouts.keys() == []


@pytest.mark.parametrize(
    "url",
    ["https://media.example.com:22/x.png", "https://media.example.com:8443/x.png", "http://media.example.com:443/"],
)
def test_bare_allow_listed_host_on_another_port_is_refused(url):
    # Given an allow-list naming just the host
    pol = policy("media.example.com")
    # When a URL names another port than its scheme's default
    # Then it is refused before anything is resolved or contacted
    with pytest.raises(MediaRejected, match="allow-listed"):
        vet_url(url, pol, lambda h, p: pytest.fail("resolved a refused URL"))


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("https://media.example.com/x.png", 443),
        ("https://media.example.com:443/x.png", 443),
        ("http://media.example.com/x.png", 80),
        ("http://media.example.com:80/x.png", 80),
    ],
)
def test_bare_allow_listed_host_on_its_default_port_is_allowed(url, port):
    assert vet_url(url, policy("media.example.com"), lambda h, p: ["93.184.216.34"]).port == port


def test_port_named_in_the_allow_list_is_allowed_and_only_that_one():
    pol = policy("media.example.com:8443", allow_http=False)
    assert vet_url("https://media.example.com:8443/x.png", pol, lambda h, p: ["93.184.216.34"]).port == 8443
    for url in ("https://media.example.com/x.png", "https://media.example.com:22/x.png"):
        with pytest.raises(MediaRejected, match="allow-listed"):
            vet_url(url, pol, lambda h, p: ["93.184.216.34"])


def test_redirect_to_another_port_of_a_bare_allow_listed_host_is_refused_and_never_contacted(cutouts):
    # Given an allow-list naming the host bare (and the exact host:port the redirect starts from),
    # and that start redirecting to another port of the same address
    cutouts.evil.files["/steal.png"] = Reply(200, cutout_png())
    cutouts.gateway.files["/out.png"] = Reply(302, b"", {"Location": f"http://127.0.0.1:{cutouts.evil.port}/steal.png"})
    # When the URL is fetched
    with pytest.raises(MediaRejected, match="allow-listed"):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", policy("127.0.0.1", cutouts.gateway.host))
    # Then the other port is never contacted
    assert cutouts.evil.count() == 0 and cutouts.keys() == []


# --- the time budget -----------------------------------------------------------------------------


class TricklingHost:
    """Sends a PNG's first bytes at once, then one byte every ``interval`` seconds, with no length:
    each read returns before the read time-out, so only a deadline stops it."""

    def __init__(self, interval: float = 0.05, total_seconds: float = 4.0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(cutout_png()[:16])
                    self.wfile.flush()
                    end = time.monotonic() + total_seconds
                    while time.monotonic() < end:
                        time.sleep(interval)
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_slow_host_is_unavailable_once_the_deadline_passes_within_the_time_out(cutouts):
    # Given a host that answers after 1.5 s, well within a 2 s time-out, and a deadline 0.4 s away
    cutouts.gateway.files["/out.png"] = Reply(200, cutout_png(), delay=1.5)
    started = time.monotonic()
    pol = policy(cutouts.gateway.host)._replace(deadline=started + 0.4)
    # When it is fetched
    with pytest.raises(MediaUnavailable):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", pol)
    # Then the download gave up at the deadline (a later try may work), and nothing was written
    assert time.monotonic() - started < 1.2
    assert cutouts.keys() == []


def test_deadline_already_past_contacts_no_host(cutouts):
    cutouts.gateway.files["/out.png"] = Reply(200, cutout_png())
    pol = policy(cutouts.gateway.host)._replace(deadline=time.monotonic() - 1)
    with pytest.raises(MediaUnavailable):
        fetch(cutouts, cutouts.gateway.base_url + "/out.png", pol)
    assert cutouts.gateway.count() == 0 and cutouts.keys() == []


def test_trickling_host_is_cut_off_at_the_deadline_and_nothing_is_written(cutouts):
    # Given a host that keeps sending a byte at a time, never silent as long as a read time-out
    host = TricklingHost()
    try:
        started = time.monotonic()
        pol = policy(host.host)._replace(deadline=started + 0.6)
        # When its media is fetched
        with pytest.raises(MediaUnavailable):
            fetch(cutouts, f"http://{host.host}/out.png", pol)
        elapsed = time.monotonic() - started
    finally:
        host.close()
    # Then the download stopped at the deadline, and no truncated cutout was stored
    assert elapsed < 1.5
    assert cutouts.keys() == []


@pytest.mark.parametrize(
    "url", ["https://[pub-x.r2.dev/o.png", "https://host:99999/o.png", "https://host:port/o.png", "https://]/x"]
)
def test_a_malformed_media_url_is_rejected_not_raised(url):
    policy = MediaPolicy(frozenset({"host", "pub-x.r2.dev"}), 1024, 1.0)
    with pytest.raises(MediaRejected):
        vet_url(url, policy, lambda host, port: ["93.184.216.34"])
