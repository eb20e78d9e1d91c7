"""The `/_fake/...` HTTP endpoints: the server's test hooks for a client in another process.

POST /_fake/jobs/{ns}/{name}/state  {"state": "active|succeeded|failed|pending", "reason", "message"}
                                    or {"status": {...}} to set the raw status
POST /_fake/pods/{ns}               a Pod object to add
POST /_fake/podlogs/{ns}/{pod}      {"data": "text to append", "end": bool, "cut": bool, "container"}: a
                                    container's output (see podlogs.py)
POST /_fake/jobs/clear              {"namespace"}: forget every Job of a namespace at once (benchmark cycles)
POST /_fake/podlogs-ticker          {"namespace", "pods": [...], "every_ms"}: a line to each pod's output
                                    every `every_ms`, written by the fake itself, until reset
POST /_fake/controller              {"mode": "off|timed|complete", "active_after_ms", "complete_after_ms",
                                     "fail_image", "collect_finished", "pods", "terminate_after_ms"}
POST /_fake/faults                  {"kind": "429|429-status|500|503|403|delay", "count", "verb", "retry_after",
                                     "delay_seconds", "seconds", "path"}: the next `count` requests (to a
                                     URL path containing "path", if given), or with "seconds" every
                                     request for that long
POST /_fake/admission               {"namespace", "reason"}: admission there refuses every pod with that
                                     reason (FailedCreate Events on their Jobs); "reason": null admits again
POST /_fake/forbid                  {"namespaces": [...]}: every request in them answers 403
POST /_fake/token                   {"token": "..." | null}: the bearer token required from now on (null: none)
POST /_fake/namespaces              {"exist": [...] | null, "terminating": [...], "not_ready": N}: namespace
                                    lifecycle admission (null: every namespace exists)
POST /_fake/quota                   {"namespace", "hard": N | null, "name"}: a count/jobs.batch ResourceQuota
POST /_fake/compact                 {"next_continues": N}: expire every continue token now, or (with N) the
                                    tokens of the next N continued lists
GET  /_fake/counters                {"verbs": {...}, "total": N, "jobs": N, "pods": N}
GET  /_fake/jobs                    [{"namespace", "name", "created_by", "created_wall", "status"}...]
POST /_fake/jobs                    {"namespace", "jobs": [Job bodies], "state": "pending|active|succeeded|failed"}:
                                    create many Jobs at once (benchmark set-up), all in that state
POST /_fake/jobs/state              {"state": ..., "at_once": bool}: set every Job to that state; with
                                    at_once, watches hear none of it until all are set ("released_wall")
POST /_fake/watch                   {"drop": true, "compact": true, "cut_next": N, "bookmark_seconds": S}: cut every
                                    open watch stream now; forget the watch history (older versions get 410);
                                    send the next N watch events half-written, then cut; bookmark period
GET  /_fake/watch                   {"opened": N, "bytes": N}: watch streams served and bytes they sent
POST /_fake/reset                   forget everything (objects, records, faults, controller)
POST /_fake/reset-counters          forget request records and counters only
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from tests.fakekube.controller import ControllerMode
from tests.fakekube.faults import Fault
from tests.fakekube.store import StatusError

if TYPE_CHECKING:
    from tests.fakekube.server import FakeKubeServer

_STATE = re.compile(r"^/_fake/jobs/([^/]+)/([^/]+)/state$")
_PODS = re.compile(r"^/_fake/pods/([^/]+)$")
_POD_LOGS = re.compile(r"^/_fake/podlogs/([^/]+)/([^/]+)$")


def handle(fake: FakeKubeServer, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    ok = {"ok": True}
    if method == "GET" and path == "/_fake/counters":
        with fake.store.lock:
            jobs, pods = len(fake.store.jobs), len(fake.store.pods)
        counts = dict(fake.counters)
        return 200, {"verbs": counts, "total": sum(counts.values()), "jobs": jobs, "pods": pods}
    if method == "GET" and path == "/_fake/jobs":
        with fake.store.lock:
            return 200, [
                {
                    "namespace": ns,
                    "name": name,
                    "created_by": fake.store.created_by.get((ns, name), ""),
                    "created_wall": fake.store.created_wall.get((ns, name), 0.0),
                    "status": job.get("status", {}),
                }
                for (ns, name), job in fake.store.jobs.items()
            ]
    if method == "GET" and path == "/_fake/watch":
        return 200, {"opened": fake.store.watch.opened, "bytes": fake.store.watch.bytes_sent}
    if method != "POST":
        raise StatusError(405, "MethodNotAllowed", f"{method} {path} is not a fake control endpoint")
    if path == "/_fake/jobs":
        state = body.get("state", "pending")
        for job in body.get("jobs", []):
            created = fake.store.create_job(body.get("namespace", "default"), job, created_by="fakekube-bulk")
            if state != "pending":
                fake.set_job_state(body.get("namespace", "default"), created["metadata"]["name"], state)
        return 201, ok
    if path == "/_fake/jobs/state":
        at_once = bool(body.get("at_once"))
        if at_once:
            fake.store.hold_watch()
        with fake.store.lock:
            keys = list(fake.store.jobs)
        try:
            for namespace, name in keys:
                fake.set_job_state(namespace, name, body.get("state", "succeeded"))
        finally:
            if at_once:
                fake.store.watch.release()
        return 200, {"ok": True, "jobs": len(keys), "released_wall": time.time()}
    match = _STATE.match(path)
    if match:
        if "status" in body:
            fake.set_job_status(match.group(1), match.group(2), body["status"])
        else:
            fake.set_job_state(
                match.group(1),
                match.group(2),
                body.get("state", "active"),
                reason=body.get("reason", ""),
                message=body.get("message", ""),
            )
        return 200, ok
    match = _PODS.match(path)
    if match:
        return 201, fake.add_pod(match.group(1), body)
    logs = _POD_LOGS.match(path)
    if logs and method == "POST":
        namespace, pod, container = logs.group(1), logs.group(2), str(body.get("container", "task"))
        if body.get("data"):
            fake.pod_logs.write(namespace, pod, str(body["data"]).encode(), container)
        if body.get("end"):
            fake.pod_logs.end(namespace, pod, container)
        if body.get("cut"):
            fake.pod_logs.cut(namespace, pod)
        return 200, ok
    if path == "/_fake/jobs/clear":
        with fake.store.lock:
            for key in [k for k in fake.store.jobs if k[0] == body.get("namespace", "default")]:
                del fake.store.jobs[key]
        return 200, ok
    if path == "/_fake/podlogs-ticker":
        fake.pod_logs.tick(body.get("namespace", "default"), list(body["pods"]), float(body.get("every_ms", 50)) / 1000)
        return 200, ok
    if path == "/_fake/controller":
        fake.controller.configure(
            ControllerMode(
                body.get("mode", "off"),
                float(body.get("active_after_ms", 50.0)),
                float(body.get("complete_after_ms", 200.0)),
                body.get("fail_image", "fail"),
                collect_finished=bool(body.get("collect_finished", False)),
                pods=bool(body.get("pods", False)),
                terminate_after_ms=float(body.get("terminate_after_ms", 0.0)),
            )
        )
        return 200, ok
    if path == "/_fake/admission":
        fake.refuse_pods(body.get("namespace", "default"), body.get("reason"))
        return 200, ok
    if path == "/_fake/faults":
        fake.faults.add(Fault.from_json(body))
        return 200, ok
    if path == "/_fake/forbid":
        fake.forbidden_namespaces = set(body.get("namespaces", []))
        return 200, ok
    if path == "/_fake/token":
        fake.token = body.get("token")
        return 200, ok
    if path == "/_fake/namespaces":
        exist = body.get("exist")
        fake.namespaces = None if exist is None else set(exist)
        fake.terminating_namespaces = set(body.get("terminating", []))
        fake.admission_not_ready = int(body.get("not_ready", 0))
        return 200, ok
    if path == "/_fake/quota":
        fake.set_job_quota(body["namespace"], body.get("hard"), name=body.get("name", "jobs-quota"))
        return 200, ok
    if path == "/_fake/compact":
        if body.get("next_continues"):
            fake.expire_continue_tokens(int(body["next_continues"]))
        else:
            fake.compact()
        return 200, ok
    if path == "/_fake/watch":
        journal = fake.store.watch
        if body.get("compact"):
            fake.store.compact_watch()
        if body.get("cut_next"):
            with journal.cond:
                journal.cut_next = int(body["cut_next"])
        if body.get("bookmark_seconds"):
            journal.bookmark_seconds = float(body["bookmark_seconds"])
        if body.get("drop"):
            journal.drop_streams()
        return 200, ok
    if path == "/_fake/reset":
        fake.reset()
        return 200, ok
    if path == "/_fake/reset-counters":
        fake.reset_counters()
        return 200, ok
    raise StatusError(404, "NotFound", f"no fake control endpoint {path}")
