"""The web router on its own: the page's fields and labels, its static files, and what it must never contain.

The browser test (tests/system/test_web_browser.py) checks the page works; these checks are the fast
ones that keep it CSP-clean, offline-safe and shipped as package data.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from nightwatch.app.web import PAGE_CSP, STATIC_FILES, web_router

WEB_DIR = Path(__file__).parents[4] / "src" / "nightwatch" / "app" / "web"
PYPROJECT = Path(__file__).parents[4] / "pyproject.toml"


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None], parents: list[Element]) -> None:
        self.tag, self.attrs, self.parents, self.text = tag, attrs, list(parents), ""

    def inside(self, element_id: str) -> bool:
        return any(p.attrs.get("id") == element_id for p in self.parents)


class PageParser(HTMLParser):
    VOID = {"meta", "link", "input", "br", "img", "hr", "source", "area", "base", "col", "embed", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self._open)
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find(self, tag: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag) and all(e.attrs.get(k) == v for k, v in attrs.items())
        ]


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(web_router())
    return TestClient(app)


@pytest.fixture(scope="module")
def page(client: TestClient) -> PageParser:
    response = client.get("/")
    assert response.status_code == 200
    parser = PageParser()
    parser.feed(response.text)
    return parser


def test_page_is_html_with_a_strict_csp(client: TestClient) -> None:
    response = client.get("/")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert "script-src 'self'" in PAGE_CSP and "unsafe" not in PAGE_CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.head("/").status_code == 200


def test_submit_form_has_every_field_with_a_label(page: PageParser) -> None:
    names = {e.attrs.get("name") for e in page.elements if e.tag in ("input", "textarea") and e.inside("submit-form")}
    assert names == {"name", "namespace", "priority", "image", "command", "args", "env", "run_at"}
    assert page.find("textarea", name="args") and page.find("textarea", name="env")
    assert page.find("button", type="submit", id="submit-button")[0].inside("submit-form")
    # Each field's error line is wired to it, so a screen reader reads the server's message with the field.
    for field in ("name", "namespace", "image", "command", "args", "env", "run_at"):
        described = (page.find(id=f"f-{field}")[0].attrs.get("aria-describedby") or "").split()
        assert f"f-{field}-error" in described and page.find(id=f"f-{field}-error")


def test_every_control_has_a_label(page: PageParser) -> None:
    labelled = {e.attrs.get("for") for e in page.find("label")}
    controls = [e for e in page.elements if e.tag in ("input", "select", "textarea")]
    assert len(controls) >= 10
    unlabelled = [e.attrs for e in controls if e.attrs.get("id") not in labelled]
    assert unlabelled == []
    labels = {e.attrs.get("for"): e.text.strip() for e in page.find("label")}
    assert labels["f-name"] == "Name" and labels["f-env"] == "Environment" and labels["token"] == "API token"


def test_token_is_a_password_field_and_the_detail_is_a_dialog(page: PageParser) -> None:
    token = page.find("input", id="token")[0]
    assert token.attrs["type"] == "password" and token.attrs["autocomplete"] == "off"
    dialog = page.find("dialog", id="detail")[0]
    assert dialog.attrs.get("aria-labelledby") == "detail-title"
    assert page.find("button", id="detail-cancel")[0].inside("detail")
    statuses = [e.text for e in page.find("option") if e.inside("filter-status")]
    assert statuses == ["Any", "Normal", "Pending", "Running", "Succeeded", "Failed", "Cancelled"]
    assert page.find("input", id="filter-mine", type="checkbox") and page.find("button", id="load-more")


def test_page_has_no_inline_code_or_style(client: TestClient, page: PageParser) -> None:
    scripts = page.find("script")
    assert [s.attrs.get("src", "").split("?")[0] for s in scripts] == ["static/app.js"]
    assert all(not s.text.strip() for s in scripts)
    assert page.find("style") == []
    inline = [(e.tag, a) for e in page.elements for a in e.attrs if a.startswith("on") or a == "style"]
    assert inline == []
    assert "javascript:" not in client.get("/").text.lower()


def test_static_files_are_served_with_their_types_and_versioned(client: TestClient, page: PageParser) -> None:
    referenced = [s.attrs["src"] for s in page.find("script")] + [
        e.attrs["href"] for e in page.find("link", rel="stylesheet")
    ]
    assert sorted(ref.split("?")[0] for ref in referenced) == ["static/app.js", "static/style.css"]
    for ref in referenced:
        response = client.get("/" + ref)
        assert response.status_code == 200, ref
        name = ref.split("?")[0].removeprefix("static/")
        assert response.headers["content-type"] == STATIC_FILES[name]
        assert response.content == (WEB_DIR / "static" / name).read_bytes()
        assert re.fullmatch(r"static/[a-z.]+\?v=[0-9a-f]{12}", ref)
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/index.html", "/static/..%2F__init__.py", "/static/"])
def test_nothing_else_is_served_from_static(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("name", ["index.html", "static/app.js", "static/style.css"])
def test_assets_reference_no_external_url(name: str) -> None:
    text = (WEB_DIR / name).read_text()
    assert re.findall(r"https?://|(?<![:\w])//[\w.-]+\.[a-z]{2,}/|@import|url\(", text, re.IGNORECASE) == []


def test_script_never_turns_data_into_markup_or_code() -> None:
    script = (WEB_DIR / "static" / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "sessionStorage" in script and "localStorage" not in script and "document.cookie" not in script
    assert 'credentials: "omit"' in script


def test_package_data_ships_every_asset() -> None:
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["nightwatch"]
    package_root = WEB_DIR.parents[1]
    assets = [p for p in WEB_DIR.rglob("*") if p.is_file() and p.suffix in (".html", ".js", ".css")]
    assert len(assets) == 3
    for asset in assets:
        relative = asset.relative_to(package_root).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
