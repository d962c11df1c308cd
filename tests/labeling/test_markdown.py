"""Guideline Markdown renders to sanitised HTML: script, event handlers and javascript:
links come out inert, the Markdown itself survives."""

import pytest

from labeling.markdown import render_markdown


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
        "<img src=x onerror=alert(1)>",
        '<p onmouseover="alert(1)">hover</p>',
        "[click](javascript:alert(1))",
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<a href="&#106;avascript:alert(1)">x</a>',
        "<iframe src=//evil.example></iframe>",
        '<svg onload="alert(1)"><circle/></svg>',
        "<style>body{display:none}</style>",
        '<form action="//evil.example"><input name=x></form>',
        "![x](javascript:alert(1))",
    ],
)
def test_dangerous_markup_renders_inert(text):
    html = str(render_markdown(text)).lower()
    for bad in (
        "<script",
        "onerror",
        "onload",
        "onmouseover",
        "javascript:",
        "<iframe",
        "<style",
        "<form",
        "<svg",
        "evil.example/x.js",
    ):
        assert bad not in html, (text, html)


def test_markdown_survives_sanitising():
    html = str(
        render_markdown(
            "# Title\n\n**bold** and *em*, `code`\n\n- one\n- two\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n[docs](https://example.org/g)"
        )
    )
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html and "<code>code</code>" in html
    assert "<li>one</li>" in html and "<td>1</td>" in html
    assert '<a href="https://example.org/g" rel="noopener noreferrer">docs</a>' in html


def test_text_is_escaped_not_interpreted():
    assert str(render_markdown("1 < 2 & 3 > 2")) == "<p>1 &lt; 2 &amp; 3 &gt; 2</p>"
