"""labeling.imports.rows: row checks without the database."""

from __future__ import annotations

import pytest

from labeling.imports import rows


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://cdn.example.org/a.jpg?x=1", True),
        ("http://10.0.0.1/a.png", True),  # stored; refused later by the fetcher, not here
        ("javascript:alert(1)", False),
        ("data:image/png;base64,AAAA", False),
        ("file:///etc/passwd", False),
        ("https://", False),
        ("https://exa mple.org/a.png", False),
        ('https://example.org/"onerror=x', False),
        ("https://example.org:99999/a.png", False),
        ("https://example.org/" + "a" * 2000, False),
    ],
)
def test_http_url_check(url, ok):
    assert rows.is_http_url(url) is ok
