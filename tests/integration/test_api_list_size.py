"""A page of `GET /api/v1/tasks` is bounded in bytes, whatever the rows hold (issue 14, point 2).

List items are summaries: no `info` (up to 256 KiB a row, ~786 KB once non-ASCII text is escaped),
every text field cut (`TaskSummary`). The bound documented in docs/api.md is checked twice: computed
from the worst item the schema allows, and measured on a live server over 500 rows of maximal `info`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.encoders import jsonable_encoder

from nightwatch.app.api.app import AsciiJSONResponse
from nightwatch.app.api.schemas import TaskPageOut, TaskSummaryOut
from nightwatch.app.cursor import MAX_ID, encode_cursor
from nightwatch.domain.jobspec import MAX_INFO_BYTES
from nightwatch.domain.model import MAX_MESSAGE_CHARS, TaskId, TaskStatus
from nightwatch.domain.ports import (
    MAX_LISTED_JOB_NAME_CHARS,
    MAX_LISTED_MESSAGE_CHARS,
    MAX_LISTED_NAME_CHARS,
    NewTask,
    TaskSummary,
)
from nightwatch.domain.queues import PRIORITY_MIN
from tests.support.api_server import ALICE, ApiServer, api_server, database_url

MAX_PAGE_ROWS = 500
MAX_ITEM_BYTES = 18_077
"""docs/api.md: the largest list item, every text field at its bound in characters that JSON
escapes to 12 bytes each (outside the BMP: two `\\uXXXX`), every number at its widest."""
MAX_PAGE_BYTES = 9_039_063
"""docs/api.md: the largest page, 500 such items and the widest cursor (8.6 MiB)."""
MAX_ASCII_PAGE_BYTES = 976_063
"""docs/api.md: the largest page when the text is ASCII (names always are, messages usually)."""

WIDEST_TIME = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
EMOJI = "\U0001f600"
"""JSON-escaped as 12 bytes (a surrogate pair), the most any character costs."""


def _render(content: object) -> bytes:
    return bytes(AsciiJSONResponse(jsonable_encoder(content)).body)


def _widest_item(char: str, over: int = 0) -> TaskSummaryOut:
    """Every text field `over` characters past its bound (0: exactly at it, which is widest: a cut
    field ends in "…", cheaper than an escaped astral character)."""
    summary = TaskSummary(
        id=TaskId(MAX_ID),
        name=char * (MAX_LISTED_NAME_CHARS + over),
        namespace=char * (MAX_LISTED_NAME_CHARS + over),
        status=TaskStatus.CANCELLED,
        user_id=-(2**63),
        message=char * (MAX_LISTED_MESSAGE_CHARS + over),
        job_name=char * (MAX_LISTED_JOB_NAME_CHARS + over),
        version=-(2**63),
        cancel_requested=False,
        created_at=WIDEST_TIME,
        started_at=WIDEST_TIME,
        finished_at=WIDEST_TIME,
        priority=PRIORITY_MIN,
        next_attempt_at=WIDEST_TIME,
        run_at=WIDEST_TIME,
        queue=char * (MAX_LISTED_NAME_CHARS + over),
    )
    # The longest reason a list row gives (ExplainWaiting.listed: a run_at or retry time).
    return TaskSummaryOut.of(summary, waiting=f"retry at {WIDEST_TIME.isoformat()}")


def test_the_documented_bound_holds_for_the_widest_item_the_schema_allows() -> None:
    assert len(_render(_widest_item(EMOJI))) == MAX_ITEM_BYTES
    for char in ("a", "\u00e9", "\x01", '"', EMOJI):  # nothing costs more than the widest character
        for over in (0, 1, MAX_MESSAGE_CHARS):  # longer text is cut on construction
            assert len(_render(_widest_item(char, over))) <= MAX_ITEM_BYTES
    page = TaskPageOut(items=[_widest_item(EMOJI)] * MAX_PAGE_ROWS, next_cursor=encode_cursor(MAX_ID))
    assert len(_render(page)) == MAX_PAGE_BYTES
    ascii_page = TaskPageOut(items=[_widest_item("a")] * MAX_PAGE_ROWS, next_cursor=encode_cursor(MAX_ID))
    assert len(_render(ascii_page)) == MAX_ASCII_PAGE_BYTES


@pytest.fixture(params=["sqlite", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[ApiServer]:
    with database_url(request.param) as url, api_server(url) as running:
        yield running


def _maximal_info(n: int) -> str:
    """A valid info of exactly MAX_INFO_BYTES in UTF-8, of 2-byte characters (escaped: 6 bytes each)."""
    head = json.dumps({"image": "busybox", "n": n, "pad": ""}, ensure_ascii=False)[:-2]
    room = MAX_INFO_BYTES - len(head.encode()) - 2
    info = head + "\u00e9" * (room // 2) + "x" * (room % 2) + '"}'
    assert len(info.encode()) == MAX_INFO_BYTES
    return info


def test_a_500_row_page_of_maximal_info_rows_stays_under_the_documented_bound(server: ApiServer) -> None:
    repository = server.repository
    now = datetime.now(UTC)
    epoch = repository.advance_epoch()
    # Names the columns hold (VARCHAR(45)), job names and messages at their widest, all in
    # characters JSON escapes to 12 bytes; `info` at its limit, escaped to ~786 KB.
    tasks = [
        repository.add(NewTask(f"{n:04d}-{EMOJI * 40}", "default", _maximal_info(n), user_id=1), now)
        for n in range(MAX_PAGE_ROWS + 1)
    ]
    repository.apply([t.start(EMOJI * MAX_LISTED_JOB_NAME_CHARS, now) for t in tasks], epoch=epoch)
    failed = [repository.get(t.id).fail(EMOJI * MAX_MESSAGE_CHARS, now) for t in tasks]
    assert len(repository.apply(failed, epoch=epoch).applied) == len(tasks)
    with server.client(ALICE) as alice:
        first = alice.get("/api/v1/tasks", params={"limit": 1})
        assert first.status_code == 200
        (item,) = first.json()["items"]
        assert "info" not in item
        assert item["message"] == EMOJI * (MAX_LISTED_MESSAGE_CHARS - 1) + "\u2026"
        assert alice.get(f"/api/v1/tasks/{item['id']}").json()["info"] == _maximal_info(MAX_PAGE_ROWS)

        page = alice.get("/api/v1/tasks", params={"limit": MAX_PAGE_ROWS})
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) == MAX_PAGE_ROWS and body["next_cursor"] is not None
        assert all("info" not in listed for listed in body["items"])
        assert len(page.content) <= MAX_PAGE_BYTES
        assert len(page.content) <= MAX_PAGE_ROWS * MAX_ITEM_BYTES
