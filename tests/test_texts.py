"""The pages' texts (static/js/texts.js) and what the pages' code may not hard-code.

Every key is in every language with the same `{placeholders}`; every key the HTML and the JS ask for
exists; the labels, verdicts and the data channel's name come from /config (the JS must not name them).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from server.rtc.messages import DATA_CHANNEL_LABEL
from vision.labels import LABEL_VERDICTS, LABELS

STATIC = Path(__file__).resolve().parents[1] / "static"
TEXTS_JS = STATIC / "js" / "texts.js"
PREFIX = "export const TEXTS = "
PAGE_STATES = ("idle", "starting", "offline", "paused", "camera", "none")
"""Banner states of the page besides the verdicts: idle, not checking (static/js/scene.js), nobody."""
KIOSK_STATES = ("starting", "offline", "paused", "camera", "none")


def texts() -> dict[str, dict[str, str]]:
    source = TEXTS_JS.read_text(encoding="utf-8")
    start = source.index(PREFIX) + len(PREFIX)
    body = source[start:].strip()
    assert body.endswith(";"), "texts.js must end its table with ';'"
    table = json.loads(body[:-1])
    assert isinstance(table, dict)
    return table


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_every_language_has_every_key_with_the_same_placeholders() -> None:
    table = texts()
    assert set(table) == {"en", "ko"}
    english = table["en"]
    for language, entries in table.items():
        missing = sorted(set(english) - set(entries))
        extra = sorted(set(entries) - set(english))
        assert not missing, f"{language} lacks {missing}"
        assert not extra, f"{language} has keys English lacks: {extra}"
        for key, text in entries.items():
            assert isinstance(text, str) and text.strip(), f"{language}.{key} is empty"
            assert placeholders(text) == placeholders(english[key]), f"{language}.{key}: placeholders differ"
    # Korean really is Korean, not English copied over.
    hangul = [key for key, text in table["ko"].items() if re.search(r"[\uac00-\ud7a3]", text)]
    assert len(hangul) >= len(english) - 10, "most Korean texts hold no Hangul"


def keys_used() -> set[str]:
    """Keys named literally in the HTML (`data-i18n*="..."`) and the JS (`t('...')`), and those the JS
    builds from a verdict, a page state or a label."""
    used: set[str] = set()
    for page in STATIC.glob("*.html"):
        used |= set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', page.read_text(encoding="utf-8")))
    for script in (STATIC / "js").glob("*.js"):
        if script == TEXTS_JS:
            continue
        used |= set(re.findall(r"""\bt\(\s*'([\w.]+)'""", script.read_text(encoding="utf-8")))
    verdicts = set(LABEL_VERDICTS.values())
    used |= {f"banner.{state}" for state in (*PAGE_STATES, *verdicts)}
    used |= {f"kiosk.{state}.{part}" for state in (*KIOSK_STATES, *verdicts) for part in ("head", "sub")}
    used |= {f"label.{label}" for label in LABELS}
    return used


def test_every_key_the_pages_use_exists() -> None:
    used = keys_used()
    assert len(used) > 100
    for language, entries in texts().items():
        missing = sorted(used - set(entries))
        assert not missing, f"{language} lacks {missing}"


def test_the_pages_code_takes_labels_channel_and_camera_size_from_the_server() -> None:
    """The class labels, the data channel's name and the camera's size are /config's (`server/app.py`):
    written into the JS they would silently disagree with a server that changed them."""
    forbidden = [*LABELS, DATA_CHANNEL_LABEL, *LABEL_VERDICTS]
    for script in sorted((STATIC / "js").glob("*.js")):
        if script == TEXTS_JS:
            continue  # the texts table names each label it translates, as a key
        code = script.read_text(encoding="utf-8")
        for name in forbidden:
            assert not re.search(rf"""['"`]{name}['"`]""", code), f"{script.name} hard-codes {name!r}"
        assert not re.search(r"\b(640|480)\b", code), f"{script.name} hard-codes a camera size"
        assert not re.search(r"frameRate:\s*\d", code), f"{script.name} hard-codes a frame rate"
    for page in sorted(STATIC.glob("*.html")):
        html = page.read_text(encoding="utf-8")
        for label in LABELS:
            assert label not in html, f"{page.name} names the label {label!r}"


KEY_LITERAL = re.compile(
    r"""['"`]((?:page|kiosk|dash|msg|banner|label|count|unit)\.[a-zA-Z_.]*[a-zA-Z_])['"`]"""
)
"""A string literal in the JS that looks like a key: one asked for indirectly (`noticeFor`'s values, a
ternary's branches, a key passed on to `showNotice`) is still a key that must exist."""


def test_every_key_like_literal_in_the_js_exists() -> None:
    table = texts()
    found: set[str] = set()
    for script in (STATIC / "js").glob("*.js"):
        if script == TEXTS_JS:
            continue
        found |= set(KEY_LITERAL.findall(script.read_text(encoding="utf-8")))
    # Prefixes the JS completes with a state or a label (`kiosk.${verdict}.head`, labelName's prefixes).
    prefixes = {"label."}
    found -= prefixes
    assert len(found) > 50
    for language, entries in table.items():
        missing = sorted(found - set(entries))
        assert not missing, f"{language} lacks {missing}"


class _VisibleText(HTMLParser):
    """Elements of a page holding text of their own (not only their children's) without `data-i18n`."""

    VOID: ClassVar = frozenset(
        ["meta", "link", "input", "br", "img", "source", "track", "wbr", "hr", "area", "base", "col", "embed"]
    )
    SKIPPED: ClassVar = frozenset({"script", "style", "noscript"})
    """noscript's text is for a browser without JavaScript: no script can translate it."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.untranslated: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        text = data.strip()
        if not text or not self.stack:
            return
        if any(tag in self.SKIPPED for tag, _ in self.stack):
            return
        tag, attrs = self.stack[-1]
        if "data-i18n" in attrs:
            return
        # A language's own name, marked with its `lang` (the language links), is the same on every page.
        if "lang" in attrs and tag != "html":
            return
        # A number the script replaces (the kiosk's "0") needs no words.
        if re.fullmatch("[\\d\\s.,:%\N{MULTIPLICATION SIGN}\N{EN DASH}-]+", text):
            return
        self.untranslated.append(f"<{tag} id={attrs.get('id')!r}>{text}")


def test_every_visible_text_of_the_html_is_in_the_texts_table() -> None:
    """A text written into the HTML without `data-i18n` stays English on a Korean page (at least until
    the script replaces it); headings the script fills in later need a key of their own meanwhile."""
    for page in sorted(STATIC.glob("*.html")):
        parser = _VisibleText()
        parser.feed(page.read_text(encoding="utf-8"))
        assert not parser.untranslated, f"{page.name}: {parser.untranslated}"


def test_data_i18n_texts_hold_no_placeholder() -> None:
    """`translatePage` fills `data-i18n` with no values: a `{name}` there is shown as it is."""
    english = texts()["en"]
    for page in sorted(STATIC.glob("*.html")):
        html = page.read_text(encoding="utf-8")
        for key in re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', html):
            assert not placeholders(english[key]), f"{page.name}: data-i18n={key!r} holds a placeholder"
