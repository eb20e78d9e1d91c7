"""The web page in a real browser: Debian's headless Chromium, driven by Playwright, against `nightwatch run`.

One real service process (SQLite, local runner, in-process lock, a token for user 7) serves the API
and the page. Through the page only, the tests submit a task and watch it go Normal -> Succeeded,
cancel a long one from the detail view, and check that the server's field errors land next to the
field they name. Screenshots (desktop and phone width) are saved as test artefacts: under the test's
tmp dir, and copied to $NIGHTWATCH_ARTEFACTS when that is set.

The browser is /usr/bin/chromium (scripts/ensure-browser.sh installs it); Playwright never downloads
one. Without it the tests skip, or fail under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.nwprocess import Nightwatch
from tests.support.services import in_ci

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "web-browser-test-token-7f3a9c"
USER_ID = 7
WAIT_MS = 45_000  # a 2-core machine shared with other test runs: generous, the assertions are about states
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# Records every status each task row has shown, so a Normal that lasted one refresh is still seen.
RECORD_STATUSES = """
window.__seenStatuses = {};
new MutationObserver(() => {
  for (const row of document.querySelectorAll("#task-rows tr")) {
    const seen = (window.__seenStatuses[row.dataset.name] ||= []);
    if (seen[seen.length - 1] !== row.dataset.status) seen.push(row.dataset.status);
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


def require_chromium() -> None:
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} is missing (scripts/ensure-browser.sh installs Debian's chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"{problem} (CI=true: the browser test must run)", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="module")
def artefact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-artefacts")


def save_artefact(artefact_dir: Path, source: Path) -> None:
    """Keep a copy in $NIGHTWATCH_ARTEFACTS (CI uploads it) besides the tmp dir."""
    target = os.environ.get("NIGHTWATCH_ARTEFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, Path(target) / source.name)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nightwatch]:
    require_chromium()
    nw = Nightwatch(
        tmp_path_factory.mktemp("web-service"),
        env={
            "NIGHTWATCH_API__TOKENS": json.dumps([{"token": TOKEN, "user_id": USER_ID, "admin": False}]),
            # Open reads, chosen (with a token the default is token): the page shows other users' tasks
            # ("Mine only" filters them out) and browses SQL-inserted rows without signing in.
            "NIGHTWATCH_API__READS": "open",
            # Slower than nwprocess's default so a person watching (or a screenshot) sees Normal too.
            "NIGHTWATCH_WATCHERS__DISPATCH__INTERVAL_SECONDS": "1.0",
        },
    )
    nw.start()
    yield nw
    nw.kill()


@pytest.fixture(scope="module")
def browser(service: Nightwatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, service: Nightwatch, artefact_dir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(RECORD_STATUSES)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []  # uncaught script errors and CSP violations: every test ends with none
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if "Content Security Policy" in message.text else None
        ),
    )
    failed_before = request.session.testsfailed
    page.goto(f"http://127.0.0.1:{service.port}/")
    yield page
    if request.session.testsfailed > failed_before:
        shot = artefact_dir / f"failed-{request.node.name}.png"
        page.screenshot(path=str(shot), full_page=True)
        save_artefact(artefact_dir, shot)
    context.close()
    assert problems == []


def sign_in(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#whoami")).to_have_text(f"Signed in as user {USER_ID} (can submit).")


def submit(page: Any, name: str, command: str, *, image: str = "busybox", env: str = "", namespace: str = "") -> None:
    page.get_by_label("Name", exact=True).fill(name)
    if namespace:
        page.locator("#f-namespace").fill(namespace)
    page.get_by_label("Image").fill(image)
    page.get_by_label("Command").fill(command)
    page.get_by_label("Environment").fill(env)
    page.get_by_role("button", name="Submit task").click()


def row(page: Any, name: str) -> Any:
    return page.locator("#task-rows tr", has=page.get_by_role("button", name=name, exact=True))


def seen_statuses(page: Any, name: str) -> list[str]:
    return list(page.evaluate("(name) => window.__seenStatuses[name] || []", name))


def test_submitted_task_appears_as_normal_and_reaches_succeeded(page: Any, service: Nightwatch) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    submit(page, "web-hello", 'sh -c "echo \\"<b>$GREETING</b> from the page\\"; sleep 1"', env="GREETING=hello")
    expect(page.locator("#submit-result")).to_contain_text("web-hello")
    expect(row(page, "web-hello")).to_be_visible()
    expect(row(page, "web-hello").locator(".badge")).to_have_text("Succeeded")

    statuses = seen_statuses(page, "web-hello")
    assert statuses[0] == "Normal" and statuses[-1] == "Succeeded", statuses
    assert set(statuses) <= {"Normal", "Pending", "Running", "Succeeded"}, statuses

    # The detail view shows the runner's message as text: the output's markup stays literal.
    row(page, "web-hello").get_by_role("button", name="web-hello").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#d-message")).to_contain_text("<b>hello</b> from the page")
    assert dialog.locator("#d-message b").count() == 0
    expect(dialog.locator("#d-job")).to_have_text("web-hello")
    expect(dialog.locator("#d-info")).to_contain_text('"GREETING"')
    expect(dialog.get_by_role("button", name="Cancel task")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    listed = next(t for t in service.tasks() if t["name"] == "web-hello")
    stored = service.task(listed["id"])  # `list` shows summaries; `show` has info
    assert stored["status"] == "Succeeded" and stored["user_id"] == USER_ID
    assert json.loads(stored["info"])["command"] == ["sh", "-c", 'echo "<b>$GREETING</b> from the page"; sleep 1']


def test_long_task_is_cancelled_from_the_detail_view_with_the_keyboard(page: Any, service: Nightwatch) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    submit(page, "web-long", "sleep 300")
    open_button = row(page, "web-long").get_by_role("button", name="web-long")
    expect(open_button).to_be_visible()
    open_button.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#detail-status")).to_have_text("Running")

    dialog.get_by_role("button", name="Cancel task").click()
    expect(dialog.locator("#detail-result")).to_contain_text("Cancellation requested")
    expect(dialog.locator("#detail-status")).to_have_text("Cancelled")
    expect(dialog.locator("#d-cancel-requested")).to_have_text("yes")
    expect(dialog.get_by_role("button", name="Cancel task")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(open_button).to_be_focused()  # focus goes back to where the dialog was opened from
    expect(row(page, "web-long").locator(".badge")).to_have_text("Cancelled")
    assert next(t for t in service.tasks() if t["name"] == "web-long")["status"] == "Cancelled"


def test_server_errors_are_shown_next_to_the_field_they_name(page: Any, service: Nightwatch) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    name_error = page.locator("#f-name-error")
    submit(page, "Bad_Name", "true")
    expect(name_error).to_contain_text("DNS-1123")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name", exact=True)).to_be_focused()

    submit(page, "web-elsewhere", "true", namespace="kube-system")
    expect(page.locator("#f-namespace-error")).to_contain_text("not allowed")
    expect(name_error).to_be_hidden()

    submit(page, "web-twice", "true", namespace="default")
    expect(page.locator("#submit-result")).to_contain_text("web-twice")
    submit(page, "web-twice", "true")
    expect(name_error).to_contain_text(re.compile("already exists", re.IGNORECASE))

    # Caught before sending: nothing to split or no image at all.
    submit(page, "web-unsent", 'sh -c "unclosed', image="")
    expect(page.locator("#f-command-error")).to_contain_text("quote is not closed")
    expect(page.locator("#f-image-error")).to_have_text("Enter an image.")

    names = [t["name"] for t in service.tasks()]
    assert "web-twice" in names and not {"Bad_Name", "web-elsewhere", "web-unsent"} & set(names)

    page.get_by_label("API token").fill("not-the-token-of-anyone-at-all")
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#token-error")).to_contain_text("refused")


def test_filters_and_screenshots_at_desktop_and_phone_width(page: Any, service: Nightwatch, artefact_dir: Path) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    submit(page, "web-fails", "sh -c 'echo disk full >&2; exit 3'", namespace="demo")
    expect(row(page, "web-fails").locator(".badge")).to_have_text("Failed")
    expect(row(page, "web-fails").locator(".col-message")).to_contain_text("disk full")

    service.submit("cli-someone-else", "true", user_id="3")
    expect(row(page, "cli-someone-else")).to_be_visible()

    page.get_by_label("Status").select_option("Failed")
    expect(row(page, "cli-someone-else")).to_be_hidden()
    expect(row(page, "web-fails")).to_be_visible()
    assert set(page.locator("#task-rows .badge").all_text_contents()) == {"Failed"}
    page.get_by_label("Status").select_option("")
    namespace_filter = page.locator("#filter-namespace")
    namespace_filter.fill("demo")
    expect(page.locator("#task-rows tr")).to_have_count(1)
    expect(row(page, "web-fails")).to_be_visible()
    namespace_filter.fill("")
    expect(row(page, "cli-someone-else")).to_be_visible()
    page.get_by_label("Mine only").check()
    expect(row(page, "cli-someone-else")).to_be_hidden()
    expect(row(page, "web-fails")).to_be_visible()
    page.get_by_label("Mine only").uncheck()

    submit(page, "web-waiting", "sleep 300")
    expect(row(page, "web-waiting").locator(".badge")).to_have_text("Running")
    desktop = artefact_dir / "web-desktop.png"
    page.screenshot(path=str(desktop), full_page=True)

    page.set_viewport_size(PHONE)
    expect(row(page, "web-waiting")).to_have_css("display", "block")  # rows are cards at phone width
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    phone = artefact_dir / "web-phone.png"
    page.screenshot(path=str(phone), full_page=True)

    for shot in (desktop, phone):
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        save_artefact(artefact_dir, shot)


LONG_MESSAGE = "tail-" * 600
"""Longer than a listed message (1024 characters)."""


def test_load_more_follows_the_cursor_and_refreshes_keep_every_loaded_row(page: Any, service: Nightwatch) -> None:
    from playwright.sync_api import expect

    # Rows written with plain SQL, as the original system's users do; finished, so no watcher moves them.
    with sqlite3.connect(service.workdir / "nightwatch.db", timeout=30) as db:
        db.executemany(
            "INSERT INTO task (name, namespace, info, status, user_id, message) "
            "VALUES (?, 'archive', '{\"image\": \"busybox\"}', 'Succeeded', 9, 'inserted with SQL')",
            [(f"sql-row-{i:02d}",) for i in range(60)],
        )
        db.execute("UPDATE task SET message = ? WHERE name = 'sql-row-59'", (LONG_MESSAGE,))
    page.locator("#filter-namespace").fill("archive")  # reads are open: no token needed to look
    page.locator("#filter-namespace").press("Enter")  # filter now: the list restarts empty, then fills
    rows = page.locator("#task-rows tr")
    expect(rows).to_have_count(50)
    assert set(rows.locator(".col-namespace").all_text_contents()) == {"archive"}
    expect(rows.first).to_have_attribute("data-name", "sql-row-59")  # newest first
    # List items are summaries (message cut, no info); the detail view fetches the whole task.
    expect(rows.first.locator(".col-message")).to_have_text(LONG_MESSAGE[:1023] + "\u2026")
    rows.first.get_by_role("button", name="sql-row-59").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#d-message")).to_have_text(LONG_MESSAGE)
    expect(dialog.locator("#d-info")).to_contain_text('"busybox"')
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(60)
    expect(rows.last).to_have_attribute("data-name", "sql-row-00")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    updated = page.locator("#refresh-state").text_content()
    expect(page.locator("#refresh-state")).not_to_have_text(updated or "")  # a refresh after loading more
    expect(rows).to_have_count(60)


def test_the_output_panel_follows_a_running_task_and_stops_when_it_ends(page: Any, service: Nightwatch) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    submit(page, "web-logs", 'sh -c "for i in 1 2 3 4; do echo line-$i; sleep 1; done"')
    expect(row(page, "web-logs").locator(".badge")).to_have_text("Running")
    row(page, "web-logs").get_by_role("button", name="web-logs").click()
    dialog = page.get_by_role("dialog")
    logs = dialog.locator("#d-logs")
    expect(logs).to_contain_text("line-1")
    expect(logs).to_have_attribute("data-state", "following")
    expect(dialog.locator("#d-logs-command")).to_contain_text("nightwatch logs --server http://127.0.0.1:")
    expect(logs).to_contain_text("line-4")
    expect(logs).to_have_attribute("data-state", "ended")
    expect(dialog.locator("#detail-status")).to_have_text("Succeeded")
    text = logs.text_content() or ""
    assert [line for line in text.splitlines() if line] == ["line-1", "line-2", "line-3", "line-4"], text


def test_a_notification_link_opens_the_task(page: Any, service: Nightwatch) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    submit(page, "web-link", 'sh -c "echo linked output"')
    expect(row(page, "web-link").locator(".badge")).to_have_text("Succeeded")
    task_id = next(t["id"] for t in service.tasks() if t["name"] == "web-link")
    page.goto(f"http://127.0.0.1:{service.port}/?task={task_id}")
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#d-id")).to_have_text(str(task_id))
    expect(dialog.locator("#d-logs")).to_contain_text("linked output")
    expect(dialog.locator("#d-logs")).to_have_attribute("data-state", "ended")
