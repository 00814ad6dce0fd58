"""Server-rendered pages: a small template language over ``templates/`` and the ``i18n/`` catalogues.

A template holds ``{{t:key}}`` (a catalogue string, escaped), ``{{v:name}}`` (a value, escaped),
``{{raw:name}}`` (HTML the caller built and escaped) and ``{{include:file.html}}``. A key or value
that is missing is an error, so a page never shows a placeholder; the tests render every page in
every language.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Mapping
from pathlib import Path

PORTAL_DIR = Path(__file__).resolve().parent
TEMPLATES = PORTAL_DIR / "templates"
STATIC = PORTAL_DIR / "static"
I18N = PORTAL_DIR / "i18n"
LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
PAGES = {
    "home": ("home.html", "home.js", "nav.home"),
    "citizen": ("citizen.html", "citizen.js", "nav.citizen"),
    "department": ("department.html", "department.js", "nav.department"),
    "audit": ("audit.html", "audit.js", "nav.audit"),
}
_TAG = re.compile(r"\{\{(t|v|raw|include):([A-Za-z0-9_.\-]+)\}\}")


class TemplateError(Exception):
    """A template names a string or value that does not exist."""


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """The strings of ``lang`` (one JSON object, key → text)."""
    data = json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise TemplateError(f"i18n/{lang}.json is not an object of strings")
    return data


@functools.cache
def _template(name: str) -> str:
    path = (TEMPLATES / name).resolve()
    if path.parent != TEMPLATES:
        raise TemplateError(f"template {name!r} is outside the templates folder")
    return path.read_text(encoding="utf-8")


def choose_lang(asked: str | None, cookie: str | None) -> str:
    """The page language: ``?lang=`` first, then the ``lang`` cookie, else Chinese."""
    for candidate in (asked, cookie):
        if candidate in LANGS:
            return candidate
    return DEFAULT_LANG


def render_template(name: str, lang: str, values: Mapping[str, str]) -> str:
    strings = catalogue(lang)

    def sub(match: re.Match[str]) -> str:
        kind, key = match.group(1), match.group(2)
        if kind == "include":
            return render_template(key, lang, values)
        if kind == "t":
            if key not in strings:
                raise TemplateError(f"{name}: no string {key!r} in i18n/{lang}.json")
            return html.escape(strings[key])
        if key not in values:
            raise TemplateError(f"{name}: no value {key!r}")
        return values[key] if kind == "raw" else html.escape(values[key])

    return _TAG.sub(sub, _template(name))


def script_json(value: object) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(page: str, lang: str, *, path: str, extra: Mapping[str, str] | None = None) -> str:
    """A whole page: the layout around the page's template, with its script and strings."""
    template, script, title_key = PAGES[page]
    other = "en" if lang == "zh-CN" else "zh-CN"
    values = {
        "lang": lang,
        "other_lang": other,
        "other_lang_name": catalogue(other)["lang.self"],
        "path": path,
        "page": page,
        "script": script,
        "title": catalogue(lang)[title_key],
        "i18n": script_json(catalogue(lang)),
        **(extra or {}),
    }
    for key in PAGES:
        values[f"current_{key}"] = ' aria-current="page"' if key == page else ""
    values["content"] = render_template(template, lang, values)
    return render_template("base.html", lang, values)
