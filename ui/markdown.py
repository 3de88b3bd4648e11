"""Repository descriptions: Markdown rendered to HTML, then sanitized.

Python-Markdown passes raw HTML through, so its output is never trusted: nh3 (the ammonia
sanitizer) keeps only the tags and attributes below, drops ``<script>``/``<style>`` with their
content, allows links to http(s) and mailto only, and marks every link ``nofollow noopener``.
"""

import markdown as markdown_lib
import nh3
from django.utils.safestring import SafeString, mark_safe

EXTENSIONS = ["fenced_code", "tables", "sane_lists"]
TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "abbr": {"title"}}
URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> SafeString:
    html = markdown_lib.markdown(text or "", extensions=EXTENSIONS, output_format="html")
    clean = nh3.clean(
        html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=URL_SCHEMES, link_rel="nofollow noopener noreferrer"
    )
    # Safe: nh3 has just removed everything outside the allow-lists.
    return mark_safe(clean)
