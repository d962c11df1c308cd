"""Fetching an item's image URL without becoming a proxy into the private network.

Every hop (the first URL and each redirect) is checked the same way: the scheme must be
http or https, the URL must carry no credentials, the host is resolved once and *every*
address it resolves to must be public (not private, loopback, link-local, reserved,
multicast, unspecified, shared or site-local, including IPv4-mapped IPv6 forms); the
connection then goes to that checked address, so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot redirect it. Bytes and total time are
limited; redirects are followed by hand, at most ``max_redirects`` times.

No Django import: the limits come in as arguments.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
Resolver = Callable[..., list]


class FetchRefused(ValueError):
    """The URL was not fetched (or not completely); the message says why, for a person."""


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    content_type: str
    data: bytes


def is_public_address(address: str) -> bool:
    """True when ``address`` (an IPv4 or IPv6 literal) is globally routable unicast."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_public_address(str(mapped))
        if ip.teredo is not None:
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def resolve_checked(
    host: str,
    port: int,
    *,
    resolver: Resolver = socket.getaddrinfo,
    address_allowed: Callable[[str], bool] = is_public_address,
) -> tuple[int, str]:
    """Resolve ``host`` and check every address; returns (family, address) to connect to.

    Raises :class:`FetchRefused` when the host does not resolve or when *any* of its
    addresses is not allowed (a host with one public and one private address is refused:
    which one a client would use is not ours to guess).
    """
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:  # an address in the URL is checked as is, never resolved
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        if not address_allowed(str(literal)):
            raise FetchRefused(
                f"{host} is a private, loopback, link-local, reserved or multicast address; refused"
            )
        return family, str(literal)
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchRefused(f"cannot resolve {host!r}: {exc}") from exc
    if not infos:
        raise FetchRefused(f"{host!r} resolves to no address")
    for _family, _type, _proto, _name, sockaddr in infos:
        if not address_allowed(sockaddr[0]):
            raise FetchRefused(
                f"{host!r} resolves to {sockaddr[0]}, a private, loopback, link-local, "
                "reserved or multicast address; refused"
            )
    family, *_rest, sockaddr = infos[0]
    return family, sockaddr[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a checked address while sending the URL's host name."""

    def __init__(self, host, port, *, address, family, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address, self._family = address, family

    def connect(self):
        self.sock = socket.socket(self._family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self._address, self.port))


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, *, address, family, timeout, context):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address, self._family = address, family

    def connect(self):
        raw = socket.socket(self._family, socket.SOCK_STREAM)
        raw.settimeout(self.timeout)
        raw.connect((self._address, self.port))
        # SNI and certificate checks use the host name, not the pinned address.
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path+query) of an acceptable URL, or :class:`FetchRefused`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"malformed URL {url[:200]!r}: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs are fetched, not {parts.scheme!r}")
    if parts.username or parts.password:
        raise FetchRefused("URLs with credentials are not fetched")
    host = parts.hostname
    if not host:
        raise FetchRefused(f"URL {url[:200]!r} has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return parts.scheme, host, port, target


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float = 10.0,
    max_redirects: int = 3,
    resolver: Resolver = socket.getaddrinfo,
    address_allowed: Callable[[str], bool] = is_public_address,
    user_agent: str = "Concord image statistics",
) -> Fetched:
    """GET ``url`` following at most ``max_redirects`` redirects, each hop checked.

    ``max_bytes`` caps the body (a larger declared or actual body is refused); ``timeout``
    (seconds) caps the whole fetch, connection and every read included. ``resolver`` and
    ``address_allowed`` exist for tests; production uses the defaults.
    Raises :class:`FetchRefused` with the reason.
    """
    deadline = time.monotonic() + timeout
    current = url
    for _hop in range(max_redirects + 1):
        scheme, host, port, target = check_url(current)
        family, address = resolve_checked(
            host, port, resolver=resolver, address_allowed=address_allowed
        )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchRefused(f"fetching took longer than {timeout} s")
        if scheme == "https":
            conn = _PinnedHTTPSConnection(
                host,
                port,
                address=address,
                family=family,
                timeout=remaining,
                context=ssl.create_default_context(),
            )
        else:
            conn = _PinnedHTTPConnection(
                host, port, address=address, family=family, timeout=remaining
            )
        try:
            conn.request("GET", target, headers={"User-Agent": user_agent, "Accept": "image/*"})
            response = conn.getresponse()
            if response.status in REDIRECT_STATUSES:
                location = response.getheader("Location")
                if not location:
                    raise FetchRefused(f"redirect {response.status} without a Location")
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise FetchRefused(f"{host} answered {response.status} {response.reason}")
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchRefused(f"the image is {declared} bytes; the limit is {max_bytes} bytes")
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise FetchRefused(f"fetching took longer than {timeout} s")
                if conn.sock is not None:
                    conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = response.read(min(65536, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise FetchRefused(f"the image is over the limit of {max_bytes} bytes")
            return Fetched(
                url=current,
                content_type=response.getheader("Content-Type", ""),
                data=b"".join(chunks),
            )
        except (OSError, http.client.HTTPException) as exc:
            raise FetchRefused(f"fetching {host} failed: {exc}") from exc
        finally:
            conn.close()
    raise FetchRefused(f"more than {max_redirects} redirects")
