"""The `nightwatch` command: run the service, manage the schema, submit, list, show, cancel and render tasks.

`render` prints the exact Job manifest of a task (or of `--info` before submitting it).
`submit`, `list`, `show`, `cancel` and `render` talk to the database directly, or to a running replica's
REST API with `--server URL` (env NIGHTWATCH_SERVER) and `--token T` (env NIGHTWATCH_TOKEN,
better than the flag, which other users can see in the process list). Each command picks one
`TaskGateway` (`app/gateway.py`) for that and prints the same either way: `list` shows the newest
`--limit` tasks, newest first, below `--before ID` if given (`--after` is gone: it paged oldest
first), as summaries (no `info`, the message cut to 1 KiB; `show ID` has the whole task); a refused submission prints one `nightwatch: <field>: <message>` line per problem.

Exit codes: 0 success; 1 an operational error (database or server unreachable, startup failed);
2 bad usage, configuration or input (the task was not stored; a refused token); 3 no such task.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from nightwatch import __version__
from nightwatch.app.client import ApiClient, ApiRefused
from nightwatch.app.config import ConfigError, Settings, database_kind, load_settings, mask_secrets
from nightwatch.app.container import Container, build_container
from nightwatch.app.cursor import MAX_ID
from nightwatch.app.errors import problem_line
from nightwatch.app.gateway import LocalGateway, LocalScheduleGateway, ScheduleGateway, TaskGateway
from nightwatch.app.logs import configure_logging
from nightwatch.app.usecases.schedules import MAX_UPCOMING, ScheduleRequest, ScheduleView
from nightwatch.domain.errors import InvalidTaskSpec, InvalidTransition, NightwatchError, ScheduleNotFound, TaskNotFound
from nightwatch.domain.model import Task, TaskEvent, TaskStatus
from nightwatch.domain.ports import TaskSummary
from nightwatch.domain.profiles import ProfileCatalog
from nightwatch.domain.queues import waiting_reason
from nightwatch.domain.schedules import parse_run_at

logger = logging.getLogger("nightwatch")


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"nightwatch: configuration error: {line}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args, settings))
    except CliError as exc:
        print(f"nightwatch: {exc}", file=sys.stderr)
        return exc.code
    except (TaskNotFound, ScheduleNotFound) as exc:
        print(f"nightwatch: {exc}", file=sys.stderr)
        return 3
    except InvalidTaskSpec as exc:
        for problem in exc.problems:
            print(f"nightwatch: {problem_line(problem)}", file=sys.stderr)
        return 2
    except InvalidTransition as exc:
        print(f"nightwatch: {exc}", file=sys.stderr)
        return 2
    except ApiRefused as exc:  # no or a wrong token, another user's task: bad input, like the above
        print(f"nightwatch: {exc}", file=sys.stderr)
        return 2
    except NightwatchError as exc:
        print(f"nightwatch: {mask_secrets(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `nightwatch list | head`: the reader has gone, which is not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nightwatch", description="Database rows in, Kubernetes Jobs out.")
    parser.add_argument("--config", metavar="FILE", help="YAML configuration file (environment variables win)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the service (leader election, dispatch, sync, HTTP endpoint)")
    run.set_defaults(handler=cmd_run)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("init", help="the same as 'db upgrade' (kept for scripts)").set_defaults(handler=cmd_db_init)
    db_sub.add_parser(
        "upgrade", help="upgrade the schema to this version's (creates it; idempotent; safe from several replicas)"
    ).set_defaults(handler=cmd_db_upgrade)
    db_sub.add_parser("current", help="print the schema revision and whether it is this version's").set_defaults(
        handler=cmd_db_current
    )

    jobs = sub.add_parser("jobs", help="nightwatch's Jobs in the cluster")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    release = jobs_sub.add_parser(
        "release-finalizers",
        help="remove nightwatch's finalizer from Jobs whose task is terminal (with --all: from every Job, to uninstall)",
    )
    release.add_argument("--namespace", action="append", metavar="NS", help="only this namespace (repeatable)")
    release.add_argument("--all", action="store_true", help="every held Job, whatever its task's row says")
    release.set_defaults(handler=cmd_jobs_release_finalizers)

    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("NIGHTWATCH_SERVER") or None,
        help="a nightwatch replica's URL: go through its REST API instead of the database (env NIGHTWATCH_SERVER)",
    )
    remote.add_argument(
        "--token",
        metavar="T",
        default=os.environ.get("NIGHTWATCH_TOKEN") or None,
        help="bearer token for --server (env NIGHTWATCH_TOKEN, which the process list does not show)",
    )

    submit = sub.add_parser(
        "submit",
        parents=[remote],
        help="submit a task",
        usage="%(prog)s --name NAME [--namespace NS] (--image IMAGE [options] [--] [COMMAND ARGS...] | --info JSON)",
    )
    submit.add_argument("--name", required=True, help="task name = Job name (a DNS-1123 label)")
    submit.add_argument("--namespace", default="default")
    submit.add_argument("--image", help="container image")
    submit.add_argument("--info", help="the whole info JSON instead of --image and a command")
    submit.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--deadline", type=int, metavar="SECONDS", help="activeDeadlineSeconds")
    submit.add_argument("--backoff-limit", type=int, metavar="N")
    submit.add_argument("--user-id", type=int, help="the task's user (default 0; with --server, the token's)")
    submit.add_argument(
        "--at",
        metavar="WHEN",
        help="not before this time: ISO 8601 with an offset (2026-03-29T02:30:00+01:00, ...Z) or +30s/+10m/+2h/+1d",
    )
    submit.add_argument(
        "--priority",
        type=int,
        default=None,
        help="higher is dispatched first, then oldest (-1000..1000; default: the profile's priority, else 0)",
    )
    submit.add_argument("--queue", help="the configured queue to run in (info.queue)")
    submit.add_argument("cmd", nargs=argparse.REMAINDER, help="command and arguments (after --)")
    submit.set_defaults(handler=cmd_submit)

    lst = sub.add_parser("list", parents=[remote], help="list tasks, newest first (no info: see show)")
    lst.add_argument("--status", choices=[s.value for s in TaskStatus], action="append")
    lst.add_argument("--limit", type=int, default=100)
    lst.add_argument("--before", type=_task_id, metavar="ID", help="only tasks with a smaller id (the next page)")
    lst.add_argument("--after", help=argparse.SUPPRESS)  # replaced by --before: refused with a message
    lst.add_argument(
        "--json", action="store_true", help="one JSON object per line (every field but info; message cut to 1 KiB)"
    )
    lst.set_defaults(handler=cmd_list)

    show = sub.add_parser("show", parents=[remote], help="show one task")
    show.add_argument("id", type=int)
    show.set_defaults(handler=cmd_show)

    cancel = sub.add_parser("cancel", parents=[remote], help="request cancellation of a task")
    cancel.add_argument("id", type=int)
    cancel.set_defaults(handler=cmd_cancel)

    render = sub.add_parser(
        "render",
        parents=[remote],
        help="print the exact Job manifest of a task, or of --info before submitting it",
        usage="%(prog)s (ID | --namespace NS --info JSON [--name NAME]) [--json]",
    )
    render.add_argument("id", type=_task_id, nargs="?", help="a stored task")
    render.add_argument("--namespace", default="default")
    render.add_argument("--info", help="the info JSON of a task not yet submitted")
    render.add_argument("--name", help="the task name (the Job's name; default: preview)")
    render.add_argument("--json", action="store_true", help="JSON instead of YAML")
    render.set_defaults(handler=cmd_render)
    _schedule_parsers(sub, remote)

    logs = sub.add_parser("logs", parents=[remote], help="print a task's output (-f: follow it while it runs)")
    logs.add_argument("id", type=_task_id)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the task ends")
    logs.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    logs.add_argument("--attempt", type=int, metavar="K", help="attempt K (default: the current one)")
    logs.set_defaults(handler=cmd_logs)

    notify = sub.add_parser("notify", help="webhook notifications")
    notify_sub = notify.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    notify_list = notify_sub.add_parser("list", help="the newest deliveries and their outcome (reads the database)")
    notify_list.add_argument("--state", choices=["pending", "delivered", "failed"])
    notify_list.add_argument("--limit", type=int, default=50)
    notify_list.add_argument("--json", action="store_true", help="one JSON object per line")
    notify_list.set_defaults(handler=cmd_notify_list)

    queue_cmd = sub.add_parser("queue", parents=[remote], help="the configured queues: list, pause, resume")
    queue_sub = queue_cmd.add_subparsers(dest="queue_command", required=True)
    queue_sub.add_parser("list", help="every queue: paused or not, in flight, limits").set_defaults(
        handler=cmd_queue_list
    )
    for verb, helptext in (
        ("pause", "launch nothing new from the queue (running Jobs go on), on every replica"),
        ("resume", "launch from the queue again"),
    ):
        one = queue_sub.add_parser(verb, help=helptext)
        one.add_argument("name")
        one.set_defaults(handler=cmd_queue_pause if verb == "pause" else cmd_queue_resume)

    sub.add_parser("version", help="print the version").set_defaults(handler=lambda a, s: print(__version__) or 0)
    return parser


def _schedule_parsers(sub: Any, remote: argparse.ArgumentParser) -> None:
    schedule = sub.add_parser("schedule", help="scheduled and recurring tasks (docs/schedules.md)")
    actions = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[remote], help="create a schedule")
    create.add_argument("--name", required=True, help="a DNS-1123 label of at most 37 characters")
    create.add_argument("--namespace", default="default")
    create.add_argument("--cron", required=True, metavar="SPEC", help="5 fields, 6 with seconds, @hourly, @every 30s")
    create.add_argument("--timezone", default="UTC", metavar="TZ", help="IANA zone (default UTC)")
    create.add_argument("--info", required=True, metavar="JSON", help="the task template (info JSON)")
    create.add_argument("--concurrency", default="Allow", help="Allow, Forbid or Replace (default Allow)")
    create.add_argument("--starting-deadline-seconds", type=int, metavar="N", help="a slot later than this is missed")
    create.add_argument("--catch-up", type=int, default=1, metavar="N", help="missed slots run after an outage")
    create.add_argument("--keep", type=int, default=10, metavar="N", help="how many finished tasks it lists")
    create.add_argument("--user-id", type=int, help="the schedule's user (default 0; with --server, the token's)")
    create.set_defaults(handler=cmd_schedule_create)
    actions.add_parser("list", parents=[remote], help="list schedules").set_defaults(handler=cmd_schedule_list)
    for action, help_text, handler in (
        ("show", "show a schedule with its newest tasks", cmd_schedule_show),
        ("pause", "stop firing (slots of the pause are not run later)", cmd_schedule_pause),
        ("resume", "fire again from now", cmd_schedule_resume),
        ("delete", "delete a schedule (its tasks stay)", cmd_schedule_delete),
        ("trigger", "make one task now, outside the cron slots", cmd_schedule_trigger),
    ):
        one = actions.add_parser(action, parents=[remote], help=help_text)
        one.add_argument("name")
        one.add_argument("--namespace", default="default")
        one.set_defaults(handler=handler)
    upcoming = actions.add_parser(
        "next", parents=[remote], help="the next fire times of a schedule, or of --cron SPEC --timezone TZ"
    )
    upcoming.add_argument("name", nargs="?")
    upcoming.add_argument("--namespace", default="default")
    upcoming.add_argument("--cron", metavar="SPEC", help="a spec instead of a schedule's (no database needed)")
    upcoming.add_argument("--timezone", default="UTC", metavar="TZ")
    upcoming.add_argument("--from", dest="start", metavar="ISO-8601", help="after this time (default now)")
    upcoming.add_argument("--count", type=int, default=5)
    upcoming.add_argument("--json", action="store_true", help="a JSON list of ISO 8601 UTC instants")
    upcoming.set_defaults(handler=cmd_schedule_next)


@contextmanager
def _local(settings: Settings) -> Iterator[Container]:
    """A container for one CLI command on the database directly, its resources released afterwards."""
    container = _container(settings)
    try:
        yield container
    finally:
        container.shutdown_resources()


def _container(settings: Settings) -> Container:
    """A container whose database is ready: the embedded SQLite file gets its schema on first use."""
    if database_kind(settings.database.url) == "sqlite":
        from nightwatch.adapters.sql import init_database

        init_database(settings.database.url)
    return build_container(settings)


def cmd_db_init(args: argparse.Namespace, settings: Settings) -> int:
    return cmd_db_upgrade(args, settings)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from nightwatch.adapters.sql import redact
    from nightwatch.adapters.sql.migrate import upgrade

    if database_kind(settings.database.url) == "memory":
        raise CliError("memory:// needs no schema", code=2)
    done = upgrade(settings.database.url)
    where = redact(settings.database.url)
    if done.before == done.after:
        print(f"{where} is at {done.after} (head); nothing to do")
    else:
        print(f"upgraded {where} from {done.before or 'none'} to {done.after} (head)")
    return 0


def cmd_db_current(args: argparse.Namespace, settings: Settings) -> int:
    from nightwatch.adapters.sql.migrate import schema_revision

    if database_kind(settings.database.url) == "memory":
        raise CliError("memory:// needs no schema", code=2)
    revision = schema_revision(settings.database.url)
    print(revision.describe())
    return 0 if revision.is_head else 1


def _require_schema_at_head(settings: Settings) -> None:
    """`nightwatch run` on a server database: the schema must be this version's (SQLite upgrades itself)."""
    if database_kind(settings.database.url) in ("memory", "sqlite"):
        return
    from nightwatch.adapters.sql.migrate import schema_revision

    revision = schema_revision(settings.database.url)
    if revision.is_head:
        return
    if not revision.known:
        raise CliError(f"database schema is at {revision.describe()}", code=2)
    raise CliError(
        f"database schema is at {revision.current or 'none'}, this nightwatch needs {revision.head}: "
        "run 'nightwatch db upgrade'",
        code=2,
    )


@contextmanager
def _gateway(args: argparse.Namespace, settings: Settings) -> Iterator[TaskGateway]:
    """The one place that knows whether a command goes to a server (--server) or to the database."""
    if args.server:
        if getattr(args, "user_id", None) is not None:
            raise CliError("--user-id cannot be used with --server: the server takes the user from the token", code=2)
        with ApiClient(args.server, args.token) as client:
            yield client
    else:
        with _local(settings) as container:
            queries = container.repository()
            user_id = getattr(args, "user_id", None) or 0
            # Only `logs` reads output: the others need not build its adapters.
            logs = container.read_logs() if args.command == "logs" else None
            yield LocalGateway(
                container.submit_task(),
                container.request_cancel(),
                queries,
                user_id=user_id,
                render=container.render_job(),
                logs=logs,
                waiting=container.explain_waiting(),
            )


@contextmanager
def _schedule_gateway(args: argparse.Namespace, settings: Settings) -> Iterator[ScheduleGateway]:
    """As `_gateway`, for the schedule commands."""
    if args.server:
        if getattr(args, "user_id", None) is not None:
            raise CliError("--user-id cannot be used with --server: the server takes the user from the token", code=2)
        with ApiClient(args.server, args.token) as client:
            yield client
    else:
        with _local(settings) as container:
            yield LocalScheduleGateway(container.schedule_commands(), user_id=getattr(args, "user_id", None) or 0)


def _task_id(text: str) -> int:
    """A task id as an option's value: a whole number from 1 to BIGINT's maximum."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"not a task id: {text!r}")
    return value


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    info = _info_from_args(args)
    # Parsed before anything connects: a bad time stores nothing (InvalidTaskSpec: exit 2, the field named).
    run_at = parse_run_at(args.at, datetime.now(UTC)) if args.at is not None else None
    with _gateway(args, settings) as gateway:
        task = gateway.submit(args.name, args.namespace, info, run_at=run_at, priority=args.priority)
    later = f", not before {task.run_at.isoformat()}" if task.run_at is not None else ""
    print(f"submitted task {task.id} ({task.namespace}/{task.name}): {task.status}{later}")
    return 0


def _info_from_args(args: argparse.Namespace) -> str | dict[str, Any]:
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.info is not None:
        if args.image or command or args.queue is not None:
            raise CliError("give either --info or --image with a command (and --queue), not both", code=2)
        return str(args.info)
    if not args.image:
        raise CliError("--image (or --info) is required", code=2)
    info: dict[str, Any] = {"image": args.image}
    if command:
        info["command"], info["args"] = command[:1], command[1:]
    if args.env:
        pairs = [e.split("=", 1) for e in args.env]
        if any(len(p) != 2 or not p[0] for p in pairs):
            raise CliError("--env takes NAME=VALUE", code=2)
        info["env"] = [{"name": k, "value": v} for k, v in pairs]
    if args.deadline is not None:
        info["activeDeadlineSeconds"] = args.deadline
    if args.backoff_limit is not None:
        info["backoffLimit"] = args.backoff_limit
    if args.queue is not None:
        info["queue"] = args.queue
    return info


def cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    if (args.id is None) == (args.info is None):
        raise CliError("give a task ID or --info JSON (with --namespace), not both", code=2)
    with _gateway(args, settings) as gateway:
        if args.id is not None:
            manifest = gateway.render(args.id)
        else:
            manifest = gateway.render(name=args.name, namespace=args.namespace, info=str(args.info))
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False), end="")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    if args.after is not None:
        raise CliError("--after is replaced by --before ID: list shows the newest tasks first", code=2)
    statuses = [TaskStatus(s) for s in args.status or ()]
    with _gateway(args, settings) as gateway:
        tasks = gateway.list_tasks(statuses, before_id=args.before, limit=args.limit)
    if args.json:
        for task in tasks:
            print(json.dumps(_as_dict(task)))
        return 0
    print(_table(tasks))
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    with _gateway(args, settings) as gateway:
        task, waiting = gateway.show(args.id)
        events = gateway.events(args.id)
    shown = _as_dict(task, waiting)
    shown["attempt"] = task.attempt
    shown["next_attempt_at"] = _iso(task.next_attempt_at)
    # The attempts and the timeline (issue 18): one line per stored status change, oldest first.
    shown["timeline"] = [_event_line(e) for e in events]
    print(json.dumps(shown, indent=2))
    return 0


def _event_line(event: TaskEvent) -> str:
    """`<time> attempt <k> <from> -> <to> [<class>] <job>: <message>`, as `show` prints the timeline."""
    arrow = f"{event.from_status} -> {event.to_status}" if event.from_status else f"submitted as {event.to_status}"
    klass = f" [{event.failure_class}]" if event.failure_class else ""
    job = f" {event.job_name}" if event.job_name and event.to_status != "Normal" else ""
    message = f": {event.message}" if event.message else ""
    return f"{_iso(event.at)} attempt {event.attempt} {arrow}{klass}{job}{message}"


def cmd_queue_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [("NAME", "STATE", "IN FLIGHT", "MAX", "STARTS/MIN", "FAIR")]
    for q in _queue_views(args, settings):
        rows.append(
            (
                q["name"],
                "paused" if q["paused"] else "running",
                str(q["in_flight"]),
                "-" if q["max_in_flight"] is None else str(q["max_in_flight"]),
                "-" if q["max_starts_per_minute"] is None else str(q["max_starts_per_minute"]),
                "yes" if q["fair_share"] else "no",
            )
        )
    print(_columns(rows))
    return 0


def cmd_queue_pause(args: argparse.Namespace, settings: Settings) -> int:
    _set_paused(args, settings, True)
    print(f"queue {args.name} paused: nothing new starts from it (running Jobs go on)")
    return 0


def cmd_queue_resume(args: argparse.Namespace, settings: Settings) -> int:
    _set_paused(args, settings, False)
    print(f"queue {args.name} resumed")
    return 0


def _queue_views(args: argparse.Namespace, settings: Settings) -> list[dict[str, Any]]:
    if args.server:
        with ApiClient(args.server, args.token) as client:
            return client.queues()
    with _local(settings) as container:
        return [dataclasses.asdict(v) for v in container.queue_admin().list()]


def _set_paused(args: argparse.Namespace, settings: Settings, paused: bool) -> None:
    if args.server:
        with ApiClient(args.server, args.token) as client:
            client.set_paused(args.name, paused)
        return
    with _local(settings) as container:
        admin = container.queue_admin()
        admin.pause(args.name) if paused else admin.resume(args.name)


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    with _gateway(args, settings) as gateway:
        task = gateway.cancel(args.id)
    print(f"cancellation of task {task.id} ({task.namespace}/{task.name}, {task.status}) requested")
    return 0


def cmd_schedule_create(args: argparse.Namespace, settings: Settings) -> int:
    request = ScheduleRequest(
        name=args.name,
        namespace=args.namespace,
        cron=args.cron,
        timezone=args.timezone,
        info=args.info,
        concurrency=args.concurrency,
        starting_deadline_seconds=args.starting_deadline_seconds,
        catch_up=args.catch_up,
        keep=args.keep,
    )
    with _schedule_gateway(args, settings) as gateway:
        view = gateway.create_schedule(request)
    s = view.schedule
    print(f"created schedule {s.id} ({s.namespace}/{s.name}): next fire {_iso(view.next_fire_at) or '-'}")
    return 0


def cmd_schedule_list(args: argparse.Namespace, settings: Settings) -> int:
    with _schedule_gateway(args, settings) as gateway:
        views = gateway.list_schedules()
    rows = [
        ("NAME", "NAMESPACE", "CRON", "TIMEZONE", "STATE", "LAST FIRED", "NEXT", "LAST TASK", "FIRED/MISSED/SKIPPED")
    ]
    for v in views:
        s = v.schedule
        last = v.last_task
        rows.append(
            (
                s.name,
                s.namespace,
                s.cron,
                s.timezone,
                "paused" if s.suspended else "active",
                _iso(s.last_fired_at) or "-",
                _iso(v.next_fire_at) or "-",
                f"{last.name} {last.status}" if last is not None else "-",
                f"{s.fired}/{s.missed}/{s.skipped}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows))
    return 0


def cmd_schedule_show(args: argparse.Namespace, settings: Settings) -> int:
    with _schedule_gateway(args, settings) as gateway:
        view = gateway.schedule(args.namespace, args.name)
    print(json.dumps(_schedule_dict(view), indent=2))
    return 0


def cmd_schedule_pause(args: argparse.Namespace, settings: Settings) -> int:
    with _schedule_gateway(args, settings) as gateway:
        view = gateway.pause_schedule(args.namespace, args.name)
    print(f"paused schedule {view.schedule.namespace}/{view.schedule.name}")
    return 0


def cmd_schedule_resume(args: argparse.Namespace, settings: Settings) -> int:
    with _schedule_gateway(args, settings) as gateway:
        view = gateway.resume_schedule(args.namespace, args.name)
    s = view.schedule
    print(f"resumed schedule {s.namespace}/{s.name}: next fire {_iso(view.next_fire_at) or '-'}")
    return 0


def cmd_schedule_delete(args: argparse.Namespace, settings: Settings) -> int:
    with _schedule_gateway(args, settings) as gateway:
        gateway.delete_schedule(args.namespace, args.name)
    print(f"deleted schedule {args.namespace}/{args.name} (its tasks stay)")
    return 0


def cmd_schedule_trigger(args: argparse.Namespace, settings: Settings) -> int:
    with _schedule_gateway(args, settings) as gateway:
        task = gateway.trigger_schedule(args.namespace, args.name)
    print(f"triggered task {task.id} ({task.namespace}/{task.name}): {task.status}")
    return 0


def cmd_schedule_next(args: argparse.Namespace, settings: Settings) -> int:
    start = parse_run_at(args.start, datetime.now(UTC), loc="from") if args.start is not None else None
    if (args.name is None) == (args.cron is None):
        raise CliError("give a schedule NAME or --cron SPEC (with --timezone TZ), not both", code=2)
    if args.cron is not None:
        # A spec alone needs no database: the calendar is all it takes (building it connects nothing).
        if not 1 <= args.count <= MAX_UPCOMING:
            raise CliError(f"--count must be from 1 to {MAX_UPCOMING}", code=2)
        zone = args.timezone
        calendar = build_container(settings).calendar()
        times = calendar.slots(args.cron, zone, start or datetime.now(UTC), until=None, limit=args.count)
    else:
        with _schedule_gateway(args, settings) as gateway:
            zone, times = gateway.upcoming(args.namespace, args.name, start, args.count)
    if args.json:
        print(json.dumps([t.astimezone(UTC).isoformat().replace("+00:00", "Z") for t in times]))
        return 0
    local = ZoneInfo(zone)
    for t in times:
        print(f"{t.astimezone(UTC).isoformat().replace('+00:00', 'Z')}  {t.astimezone(local).isoformat()} {zone}")
    return 0


def _schedule_dict(view: ScheduleView) -> dict[str, Any]:
    s = view.schedule
    return {
        "id": s.id,
        "name": s.name,
        "namespace": s.namespace,
        "user_id": s.user_id,
        "cron": s.cron,
        "timezone": s.timezone,
        "concurrency": str(s.concurrency),
        "starting_deadline_seconds": s.starting_deadline_seconds,
        "catch_up": s.catch_up,
        "keep": s.keep,
        "suspended": s.suspended,
        "created_at": _iso(s.created_at),
        "last_slot_at": _iso(s.last_slot_at),
        "last_fired_at": _iso(s.last_fired_at),
        "next_fire_at": _iso(view.next_fire_at),
        "fired": s.fired,
        "missed": s.missed,
        "skipped": s.skipped,
        "last_task_status": str(view.last_task.status) if view.last_task is not None else None,
        "tasks": [{"id": t.id, "name": t.name, "status": str(t.status)} for t in view.tasks],
        "info": s.info,
    }


def cmd_logs(args: argparse.Namespace, settings: Settings) -> int:
    if args.tail is not None and args.tail < 0:
        raise CliError("--tail: give a number of lines, 0 or more", code=2)
    if args.attempt is not None and args.attempt < 1:
        raise CliError("--attempt: attempts count from 1", code=2)
    out = sys.stdout.buffer
    with _gateway(args, settings) as gateway:
        for chunk in gateway.logs(args.id, follow=args.follow, tail=args.tail, attempt=args.attempt):
            out.write(chunk)
            out.flush()
    return 0


def cmd_notify_list(args: argparse.Namespace, settings: Settings) -> int:
    from nightwatch.domain.notifications import DeliveryState

    with _local(settings) as container:
        state = DeliveryState(args.state) if args.state else None
        entries = container.outbox().recent(limit=args.limit, state=state)
    if args.json:
        for e in entries:
            print(
                json.dumps(
                    {
                        "delivery_id": e.id,
                        "task_id": e.task_id,
                        "event": e.event,
                        "attempt": e.attempt,
                        "state": str(e.state),
                        "tries": e.tries,
                        "next_attempt_at": _iso(e.next_attempt_at),
                        "created_at": _iso(e.created_at),
                        "last_error": e.last_error,
                    }
                )
            )
        return 0
    print(f"{'ID':>8}  {'TASK':>8}  {'EVENT':<10} {'STATE':<10} {'TRIES':>5}  LAST ERROR")
    for e in entries:
        print(f"{e.id:>8}  {e.task_id:>8}  {e.event:<10} {e.state!s:<10} {e.tries:>5}  {e.last_error[:80]}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    _require_schema_at_head(settings)
    configure_logging(settings.log.level, settings.log.format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    container = _container(settings)
    _reload_profiles_on_sighup(container, args.config)
    clean = True
    try:
        service = container.service()
        http = None
        if settings.http.enabled:
            host = settings.api.bind_host(settings.http.host)
            if not settings.api.tokens:
                logger.warning(
                    "no API tokens configured (api.tokens): listening on %s only (http.host is %s) "
                    "and refusing every write through the API",
                    host,
                    settings.http.host,
                )
            http = container.http_server()
            http.start()
        # Everything built so far (the modules, above all the kubernetes client's thousands of model
        # classes) lives as long as the process: out of the collector's sight, a full collection walks
        # only what the service allocates, and stalls every thread for a fraction of the time.
        gc.freeze()
        service.start()
        stop.wait()
        logger.info("shutting down")
        clean = service.stop(settings.shutdown_grace_seconds)
        if not clean:
            _exit_after(settings.shutdown_grace_seconds)
        if http is not None:
            http.stop()
    except OSError as exc:  # e.g. the HTTP port is taken
        raise CliError(f"cannot start: {exc}") from None
    finally:
        container.shutdown_resources()
    if not clean:
        # Worker threads of the unfinished tick would hold interpreter exit (it joins them) well past
        # the grace period; the lease is released and their writes are fenced, so leave now.
        logging.shutdown()
        os._exit(0)
    return 0


def _reload_profiles_on_sighup(container: Container, config_file: str | None) -> None:
    """SIGHUP reads the configuration again and swaps the Job profiles (nothing else is reloaded); a bad
    file keeps the old profiles and logs why."""
    profiles = container.profiles()

    def load(path: str | Path | None) -> ProfileCatalog:
        return load_settings(path).profile_catalog()

    def on_hup(signum: int, frame: object) -> None:
        # Off the signal handler: reading files and logging there can deadlock on a held lock.
        threading.Thread(target=profiles.reload, args=(config_file, load), name="reload-profiles", daemon=True).start()

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hup)


def _exit_after(seconds: float) -> None:
    """Leave with exit code 0 after `seconds`, whatever still holds on by then.

    A tick that outlived the grace period leaves threads inside library calls (a create hanging on
    the API server); closing the resources they use, or flushing a handler one of them holds, can
    block past the grace. The lease is released and their writes are fenced, so nothing is lost.
    """

    def leave() -> None:
        time.sleep(seconds)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)

    threading.Thread(target=leave, name="exit-after-grace", daemon=True).start()


def _as_dict(task: Task | TaskSummary, waiting: str | None = None) -> dict[str, Any]:
    """A task as `show` prints it, or a listed summary as `list --json` prints it (without `info`).
    A listed Normal task's `waiting` says only what its row shows (a run_at or retry time)."""
    fields: dict[str, Any] = {
        "id": task.id,
        "name": task.name,
        "namespace": task.namespace,
        "status": str(task.status),
        "message": task.message,
        "job_name": task.job_name,
        "user_id": task.user_id,
        "version": task.version,
        "cancel_requested": task.cancel_requested,
        "created_at": _iso(task.created_at),
        "started_at": _iso(task.started_at),
        "finished_at": _iso(task.finished_at),
        "priority": task.priority,
        "queue": task.queue,
    }
    if isinstance(task, Task):
        fields["run_at"] = _iso(task.run_at)
        fields["info"] = task.info
    elif waiting is None and task.status is TaskStatus.NORMAL:
        found = waiting_reason(
            run_at=task.run_at, next_attempt_at=task.next_attempt_at, queue=None, in_flight=None, now=datetime.now(UTC)
        )
        waiting = str(found) if found is not None else None
    fields["waiting"] = waiting
    return fields


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _age(value: datetime | None) -> str:
    if value is None:
        return "-"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table(tasks: Sequence[TaskSummary]) -> str:
    rows = [("ID", "NAME", "NAMESPACE", "STATUS", "AGE", "MESSAGE")]
    for t in tasks:
        message = t.message.replace("\n", " ")
        rows.append((str(t.id), t.name, t.namespace, str(t.status), _age(t.created_at), message[:70]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5] for row in rows
    ).rstrip()


def cmd_jobs_release_finalizers(args: argparse.Namespace, settings: Settings) -> int:
    """Release nightwatch's hold on its Jobs (the running service does this by itself: this is for
    leftovers and for uninstalling, when no nightwatch will ever read their outcome)."""
    from nightwatch.app.usecases.release import ReleaseJobs

    namespaces = args.namespace or list(settings.runner.allowed_namespaces)
    with _local(settings) as container:
        release = ReleaseJobs(container.repository(), container.runner(), namespaces)
        report = release(everything=args.all)
    print(f"released {report.released} Job(s), kept {report.kept} whose task still waits for its outcome")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)
