"""Guideline text as safe HTML: Markdown rendered, then sanitised with an allow-list.

Raw HTML in the text is not trusted: ``markdown`` passes it through, and ``nh3`` (the
ammonia sanitiser) then keeps only the tags and attributes listed here. Script, style
and iframe elements are dropped with their content, every ``on...=`` attribute goes
(none is allowed), and links keep only http(s), mailto and relative URLs, so
``javascript:`` links lose their ``href``. Links get ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

import markdown as markdown_lib
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i",
        "u", "s", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a", "img",
        "table", "thead", "tbody", "tr", "th", "td", "dl", "dt", "dd", "sub", "sup",
        "kbd", "abbr", "span",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align"},
    "td": {"align"},
    "abbr": {"title"},
    "ol": {"start"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
EXTENSIONS = ["tables", "fenced_code", "sane_lists", "nl2br"]


def render_markdown(text: str) -> SafeString:
    """Markdown ``text`` (a guideline) -> sanitised HTML, safe to put in a page as is."""
    html = markdown_lib.markdown(text or "", extensions=EXTENSIONS, output_format="html")
    clean = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return mark_safe(clean)  # noqa: S308 - sanitised by nh3 just above
