"""The server's own HTML notices (a wrong path, a missing token) in the reader's language and the pages'
look, with their texts from the pages' one table (static/js/texts.js, keys `notice.*`).

The language is the page's `?lang=`, else the browser's first language that has a table, else English,
as `static/js/i18n.js` chooses it. The notice links only the stylesheets that need no token
(`security.OPEN_PATHS`), so that it is styled even when the token is what is missing.
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path

from aiohttp import web

TEXTS_JS = Path(__file__).resolve().parents[1] / "static" / "js" / "texts.js"
FALLBACK = "en"
STYLESHEETS = ("/static/css/base.css", "/static/css/notice.css")
NOTICES = ("notFound", "token", "operator", "localOnly")
"""The notices: each has `notice.<name>.title` and `notice.<name>.body` in every language."""


@functools.cache
def texts() -> dict[str, dict[str, str]]:
    """The pages' texts table, read once (it is strict JSON after `export const TEXTS = `)."""
    source = TEXTS_JS.read_text(encoding="utf-8")
    body = source[source.index("=") + 1 :].strip().removesuffix(";")
    table: dict[str, dict[str, str]] = json.loads(body)
    return table


def page_language(request: web.Request) -> str:
    """`?lang=` when the table has it, else the first of Accept-Language that it has, else English."""
    table = texts()
    asked = request.query.get("lang", "").lower()
    if asked in table:
        return asked
    for part in request.headers.get("Accept-Language", "").split(","):
        base = part.split(";")[0].strip().lower().split("-")[0]
        if base in table:
            return base
    return FALLBACK


def notice_html(request: web.Request, notice: str) -> str:
    """The HTML of one of NOTICES for `request`'s reader."""
    if notice not in NOTICES:
        raise ValueError(f"no notice {notice!r}")
    lang = page_language(request)
    table = texts()[lang]
    title = html.escape(table[f"notice.{notice}.title"])
    body = html.escape(table[f"notice.{notice}.body"])
    home = html.escape(table["notice.home"])
    links = "\n".join(f'<link rel="stylesheet" href="{sheet}">' for sheet in STYLESHEETS)
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{links}
</head><body class="notice-body"><main class="notice">
<h1>{title}</h1>
<p>{body}</p>
<p><a href="/?lang={lang}">{home}</a></p>
</main></body></html>
"""


def notice_response(request: web.Request, notice: str, status: int) -> web.Response:
    return web.Response(
        text=notice_html(request, notice),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
