"""The pages' texts (static/js/texts.js) and what the pages' code may not hard-code.

Every key is in every language with the same `{placeholders}`; every key the HTML and the JS ask for
exists; the labels, verdicts and the data channel's name come from /config (the JS must not name them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from server.messages import DATA_CHANNEL_LABEL
from vision.labels import LABEL_VERDICTS, LABELS

STATIC = Path(__file__).resolve().parents[1] / "static"
TEXTS_JS = STATIC / "js" / "texts.js"
PREFIX = "export const TEXTS = "
PAGE_STATES = ("idle", "starting", "waiting", "offline", "none")
"""Banner states of the page besides the verdicts."""
KIOSK_STATES = ("starting", "offline", "none")


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
    used |= {f"{prefix}{label}" for prefix in ("label.", "count.", "kiosk.today.") for label in LABELS}
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
