"""`select` and `waiting_reason` (pure): priority order, limits, pause, fair-share round-robin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nightwatch.domain.model import TaskId
from nightwatch.domain.queues import Candidate, InFlight, Queue, Queues, check_priority, select, waiting_reason

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def cands(*specs: tuple[int, int, int, str | None]) -> list[Candidate]:
    """(id, user, priority, queue)"""
    return [Candidate(TaskId(i), u, p, q) for i, u, p, q in specs]


def ids(chosen: list[Candidate]) -> list[int]:
    return [c.task_id for c in chosen]


def test_higher_priority_goes_first_then_the_oldest() -> None:
    chosen = select(
        cands((3, 1, 0, None), (1, 1, 0, None), (5, 1, 9, None), (2, 1, -3, None)), InFlight(), Queues(), 10
    )
    assert ids(chosen) == [5, 1, 3, 2]


def test_the_budget_and_the_global_cap_bound_the_launches() -> None:
    many = cands(*((i, 1, 0, None) for i in range(1, 11)))
    assert ids(select(many, InFlight(), Queues(), 3)) == [1, 2, 3]
    capped = Queues(max_in_flight=5)
    assert ids(select(many, InFlight({(None, 1): 4}), capped, 10)) == [1]
    assert select(many, InFlight({(None, 1): 5}), capped, 10) == []


def test_a_queue_at_its_limit_holds_its_tasks_but_not_the_others() -> None:
    queues = Queues((Queue("team-a", max_in_flight=2),))
    tasks = cands((1, 1, 0, "team-a"), (2, 1, 0, "team-a"), (3, 2, 0, None))
    assert ids(select(tasks, InFlight({("team-a", 1): 1}), queues, 10)) == [1, 3]
    assert ids(select(tasks, InFlight({("team-a", 9): 2}), queues, 10)) == [3]


def test_max_starts_per_minute_counts_the_recent_starts() -> None:
    queues = Queues((Queue("q", max_starts_per_minute=3),))
    tasks = cands(*((i, 1, 0, "q") for i in range(1, 6)))
    assert ids(select(tasks, InFlight(started_last_minute={"q": 1}), queues, 10)) == [1, 2]


def test_a_paused_queue_launches_nothing() -> None:
    queues = Queues((Queue("q"),))
    tasks = cands((1, 1, 0, "q"), (2, 1, 0, None))
    assert ids(select(tasks, InFlight(paused=frozenset({"q"})), queues, 10)) == [2]


def test_fair_share_alternates_between_a_big_and_a_small_user() -> None:
    queues = Queues((Queue("q", max_in_flight=6, fair_share=True),))
    big = [(i, 1, 0, "q") for i in range(1, 50)]
    small = [(100 + i, 2, 0, "q") for i in range(5)]
    chosen = select(cands(*big, *small), InFlight(), queues, 100)
    assert [c.user_id for c in chosen] == [1, 2, 1, 2, 1, 2]


def test_fair_share_takes_turns_starting_with_the_user_with_the_fewest_in_flight() -> None:
    queues = Queues((Queue("q", fair_share=True),))
    tasks = cands((1, 1, 0, "q"), (2, 1, 0, "q"), (3, 2, 0, "q"), (4, 2, 0, "q"))
    chosen = select(tasks, InFlight({("q", 1): 3}), queues, 3)
    assert [c.user_id for c in chosen] == [2, 1, 2]


def test_a_candidate_listed_twice_launches_once() -> None:
    tasks = cands((1, 1, 0, None), (1, 1, 0, None))
    assert ids(select(tasks, InFlight(), Queues(), 10)) == [1]


def test_queues_resolve_by_info_queue_then_the_first_matching_lists() -> None:
    queues = Queues(
        (Queue("gpu", profiles=frozenset({"gpu"})), Queue("team-a", namespaces=frozenset({"a"})), Queue("rest"))
    )
    assert queues.resolve("a", 1, queue="gpu", profile=None) == "gpu"
    assert queues.resolve("a", 1, queue=None, profile="gpu") == "gpu"
    assert queues.resolve("a", 1, queue=None, profile=None) == "team-a"
    assert queues.resolve("b", 1, queue=None, profile=None) == "rest"
    assert Queues((Queue("x", users=frozenset({5})),)).resolve("b", 1, queue=None, profile=None) is None


def test_waiting_reasons_say_the_most_specific_thing() -> None:
    q = Queue("team-a", max_in_flight=20)
    later = NOW + timedelta(hours=1)
    assert str(waiting_reason(run_at=later, next_attempt_at=later, queue=q, in_flight=None, now=NOW)).startswith(
        "run_at 2026-03-01T01:00"
    )
    assert str(waiting_reason(run_at=None, next_attempt_at=later, queue=q, in_flight=None, now=NOW)).startswith(
        "retry at "
    )
    full = InFlight({("team-a", 1): 20})
    assert str(waiting_reason(run_at=None, next_attempt_at=None, queue=q, in_flight=full, now=NOW)) == (
        "queue team-a at its limit 20/20"
    )
    paused = InFlight(paused=frozenset({"team-a"}))
    assert str(waiting_reason(run_at=None, next_attempt_at=None, queue=q, in_flight=paused, now=NOW)) == (
        "paused: queue team-a"
    )
    assert str(
        waiting_reason(run_at=None, next_attempt_at=None, queue=q, in_flight=InFlight(), now=NOW, position=153)
    ) == ("position 153 in queue team-a")
    assert waiting_reason(run_at=None, next_attempt_at=None, queue=None, in_flight=InFlight(), now=NOW) is None


@pytest.mark.parametrize("bad", [1001, -1001, "1", 1.5, True])
def test_a_priority_out_of_bounds_or_not_an_integer_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="priority"):
        check_priority(bad)


def test_among_users_with_as_few_in_flight_a_newcomer_goes_first_then_the_one_served_longest_ago() -> None:
    queues = Queues((Queue("q", fair_share=True),))
    tasks = cands((1, 1, 0, "q"), (2, 2, 0, "q"), (3, 3, 0, "q"), (9, 4, 0, "q"))
    chosen = select(tasks, InFlight(), queues, 4, last_served={1: 7, 2: 5, 3: 6})
    assert [c.user_id for c in chosen] == [4, 2, 3, 1]


def test_room_is_the_free_slots_when_a_queue_takes_every_task() -> None:
    limited = Queue("a", namespaces=frozenset({"a"}), max_in_flight=3)
    rest = Queue("rest", max_in_flight=10, max_starts_per_minute=4)
    in_flight = InFlight({("a", 1): 1, ("rest", 2): 8}, started_last_minute={"rest": 1})
    assert Queues((limited, rest)).room(in_flight) == 2 + 2
    assert Queues((limited, rest)).room(InFlight(in_flight.by_queue_user, paused=frozenset({"rest"}))) == 2
    # No queue matches every task: a task in none has no limit but the global cap.
    assert Queues((limited,)).room(in_flight) == float("inf")
    assert Queues((limited,), max_in_flight=12).room(in_flight) == 3
    assert Queues((limited, Queue("open"))).room(in_flight) == float("inf")
    assert Queues((limited, rest), max_in_flight=9).room(in_flight) == 0
