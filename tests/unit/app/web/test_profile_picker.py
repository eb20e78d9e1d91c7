"""The submit form's profile picker and its "Preview Job" button (POST /api/v1/render)."""

from __future__ import annotations

from tests.unit.app.web.test_router import WEB_DIR, PageParser


def parsed() -> PageParser:
    page = PageParser()
    page.feed((WEB_DIR / "index.html").read_text())
    return page


def test_the_form_has_a_labelled_profile_picker_and_a_preview_button() -> None:
    page = parsed()
    picker = page.find("select", id="f-profile")[0]
    assert picker.inside("submit-form") and picker.attrs["name"] == "profile"
    assert "f-profile-error" in (picker.attrs.get("aria-describedby") or "").split()
    assert {e.attrs.get("for") for e in page.find("label")} >= {"f-profile"}
    button = page.find("button", id="preview-button")[0]
    assert button.inside("submit-form") and button.attrs["type"] == "button"  # never submits the form
    assert page.find("pre", id="job-preview")


def test_the_script_previews_through_render_and_lists_profiles() -> None:
    script = (WEB_DIR / "static" / "app.js").read_text()
    assert 'api("render", { method: "POST", json: form.body })' in script
    assert 'api("profiles")' in script
    assert "info.profile = profile" in script
    assert "innerHTML" not in script  # the manifest is shown with textContent, never as markup
