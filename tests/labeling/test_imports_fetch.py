"""labeling.fetch: image URLs are fetched only from public addresses, at every redirect.

No real network: name resolution is replaced by a dict, and the only server is a local
``http.server`` on 127.0.0.1 — which the default policy itself refuses.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labeling import fetch, services
from labeling.models import ImageStatsStatus, Item, PayloadKind
from tests.conftest import png_bytes


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "2002:0a00:0001::1",  # 6to4 wrapping 10.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not fetch.is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address):
    assert fetch.is_public_address(address)


def fake_resolver(table: dict[str, list[str]]):
    calls = []

    def resolve(host, port, type=0, **kwargs):  # noqa: A002 - getaddrinfo's own name
        calls.append(host)
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port),
            )
            for a in table[host]
        ]

    resolve.calls = calls
    return resolve


def test_a_host_with_any_private_address_is_refused():
    resolver = fake_resolver({"mixed.test": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(fetch.FetchRefused, match="10.0.0.7"):
        fetch.resolve_checked("mixed.test", 80, resolver=resolver)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.org/", "only http and https"),
        ("http://user:pw@example.org/a.png", "credentials"),
        ("http:///a.png", "no host"),
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url, reason):
    with pytest.raises(fetch.FetchRefused, match=reason):
        fetch.fetch_url(url, max_bytes=1000, resolver=fake_resolver({}))


@pytest.mark.parametrize(
    "host, address",
    [("metadata.test", "169.254.169.254"), ("intranet.test", "10.1.2.3"), ("v6.test", "::1")],
)
def test_hosts_resolving_to_private_addresses_are_refused_before_connecting(host, address):
    with pytest.raises(fetch.FetchRefused, match="private, loopback"):
        fetch.fetch_url(
            f"http://{host}/x.png", max_bytes=1000, resolver=fake_resolver({host: [address]})
        )


# --- Against a local server -------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    seen: list = []

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Host")))
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    Handler.routes, Handler.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def pretend_loopback_is_public(address: str) -> bool:
    """Test policy: the local server stands in for a public host; all else as in production."""
    return address == "127.0.0.1" or fetch.is_public_address(address)


def test_the_local_server_itself_is_refused_by_the_default_policy(local_server):
    port = local_server.server_address[1]
    Handler.routes["/a.png"] = (200, {"Content-Type": "image/png"}, png_bytes())
    with pytest.raises(fetch.FetchRefused, match="127.0.0.1"):
        fetch.fetch_url(f"http://127.0.0.1:{port}/a.png", max_bytes=10**6)
    with pytest.raises(fetch.FetchRefused):
        fetch.fetch_url(f"http://localhost:{port}/a.png", max_bytes=10**6)
    assert Handler.seen == []  # refused before any connection


def test_fetch_connects_to_the_checked_address_and_sends_the_host_name(local_server):
    port = local_server.server_address[1]
    data = png_bytes()
    Handler.routes["/a.png"] = (200, {"Content-Type": "image/png"}, data)
    resolver = fake_resolver({"cdn.test": ["127.0.0.1"]})
    fetched = fetch.fetch_url(
        f"http://cdn.test:{port}/a.png",
        max_bytes=10**6,
        resolver=resolver,
        address_allowed=pretend_loopback_is_public,
    )
    assert fetched.data == data and fetched.content_type == "image/png"
    assert Handler.seen == [("/a.png", f"cdn.test:{port}")]
    assert resolver.calls == ["cdn.test"]  # resolved once: the connection used that answer


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.1/secret",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://internal.test/x",  # a name that resolves to a private address
    ],
)
def test_a_redirect_to_a_private_address_is_refused(local_server, location):
    port = local_server.server_address[1]
    Handler.routes["/r"] = (302, {"Location": location}, b"")
    resolver = fake_resolver({"cdn.test": ["127.0.0.1"], "internal.test": ["192.168.0.9"]})
    with pytest.raises(fetch.FetchRefused, match="private, loopback"):
        fetch.fetch_url(
            f"http://cdn.test:{port}/r",
            max_bytes=10**6,
            resolver=resolver,
            address_allowed=pretend_loopback_is_public,
        )
    assert [path for path, _ in Handler.seen] == ["/r"]


def test_a_redirect_to_a_public_host_is_followed(local_server):
    port = local_server.server_address[1]
    Handler.routes["/r"] = (301, {"Location": f"http://img.test:{port}/b.png"}, b"")
    Handler.routes["/b.png"] = (200, {}, b"image bytes")
    resolver = fake_resolver({"cdn.test": ["127.0.0.1"], "img.test": ["127.0.0.1"]})
    fetched = fetch.fetch_url(
        f"http://cdn.test:{port}/r",
        max_bytes=10**6,
        resolver=resolver,
        address_allowed=pretend_loopback_is_public,
    )
    assert fetched.data == b"image bytes" and fetched.url.endswith("/b.png")


def test_too_many_redirects_are_refused(local_server):
    port = local_server.server_address[1]
    Handler.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(fetch.FetchRefused, match="more than 2 redirects"):
        fetch.fetch_url(
            f"http://cdn.test:{port}/loop",
            max_bytes=10**6,
            max_redirects=2,
            resolver=fake_resolver({"cdn.test": ["127.0.0.1"]}),
            address_allowed=pretend_loopback_is_public,
        )


def test_a_body_over_the_byte_limit_is_refused(local_server):
    port = local_server.server_address[1]
    Handler.routes["/big"] = (200, {}, b"x" * 5000)
    with pytest.raises(fetch.FetchRefused, match="the limit is 1000 bytes"):
        fetch.fetch_url(
            f"http://cdn.test:{port}/big",
            max_bytes=1000,
            resolver=fake_resolver({"cdn.test": ["127.0.0.1"]}),
            address_allowed=pretend_loopback_is_public,
        )


# --- The service the worker runs ------------------------------------------------------------
@pytest.mark.django_db
def test_remote_stats_service_stores_statistics_of_the_fetched_image(project, monkeypatch):
    item = Item.objects.create(
        project=project,
        external_id="u1",
        kind=PayloadKind.IMAGE_URL,
        image_url="https://cdn.example.org/u1.png",
        stats_status=ImageStatsStatus.PENDING,
    )
    data = png_bytes(30, 20)
    monkeypatch.setattr(
        fetch, "fetch_url", lambda url, **kw: fetch.Fetched(url=url, content_type="", data=data)
    )
    services.compute_remote_item_image_stats(item_id=item.pk)
    item.refresh_from_db()
    assert item.stats_status == ImageStatsStatus.DONE
    assert (item.width, item.height) == (30, 20) and item.thumbnail


@pytest.mark.django_db
def test_remote_stats_service_records_a_refusal_on_the_item(project, monkeypatch):
    item = Item.objects.create(
        project=project,
        external_id="u2",
        kind=PayloadKind.IMAGE_URL,
        image_url="http://169.254.169.254/latest/meta-data/",
        stats_status=ImageStatsStatus.PENDING,
    )
    from labeling.tasks import compute_remote_image_stats

    result = compute_remote_image_stats.delay(item.pk).get()
    item.refresh_from_db()
    assert result["status"] == ImageStatsStatus.FAILED
    assert "private, loopback" in item.stats_error
