// nightwatch web page: submit tasks, watch them, cancel them, all through /api/v1 with fetch.
// Rules this file keeps: no inline code in the page (CSP script-src 'self'); text from the API is
// only ever set with textContent (never as markup); the token lives in sessionStorage, never a cookie.
"use strict";

(function () {
  const API = "api/v1/"; // relative, so the page also works behind a path prefix
  const TOKEN_KEY = "nightwatch.token";
  const REFRESH_MS = 2000;
  const PAGE_SIZE = 50;
  const MAX_LIMIT = 500; // the most rows one refresh asks for
  const STATUSES = ["Normal", "Pending", "Running", "Succeeded", "Failed", "Cancelled"];
  const TERMINAL = new Set(["Succeeded", "Failed", "Cancelled"]);
  const FORM_FIELDS = ["name", "namespace", "priority", "image", "command", "args", "env", "profile", "run_at"];

  const $ = (id) => document.getElementById(id);

  const state = {
    tasks: [], // what the table shows, newest first
    nextCursor: null,
    whoami: null,
    generation: 0, // bumped when filters change: older responses are dropped
    timer: null,
    detailId: null,
    detailOpener: null,
    logs: null, // {id, abort, timer} of the output the detail view follows
    filterDebounce: null, // typing in the namespace filter restarts the list once the typing pauses
  };

  // ---- HTTP ----------------------------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(describe(status, body));
      this.status = status;
      this.body = body;
    }
  }

  function describe(status, body) {
    const detail = body && body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => (d && d.msg) || JSON.stringify(d)).join("; ");
    if (status === 0) return "the server cannot be reached";
    return "HTTP " + status;
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    if (opts.json !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(API + path, {
        method: opts.method || "GET",
        headers: headers,
        body: opts.json !== undefined ? JSON.stringify(opts.json) : undefined,
        credentials: "omit", // the token is the only credential; cookies are never used
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, null);
    }
    let body = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try {
        body = await response.json();
      } catch (err) {
        body = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // ---- small DOM helpers (text only) ---------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setText(node, text) {
    const value = text === undefined || text === null ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function formatTime(value) {
    if (!value) return "";
    // Naive ISO timestamps from the API are UTC.
    const iso = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : value + "Z";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(value);
    const sameYear = date.getFullYear() === new Date().getFullYear();
    return date.toLocaleString(undefined, {
      year: sameYear ? undefined : "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  function timeNode(value) {
    const node = el("time", null, formatTime(value) || "—");
    if (value) {
      node.dateTime = String(value);
      node.title = String(value);
    }
    return node;
  }

  function setTime(node, value) {
    node.replaceChildren(timeNode(value));
  }

  function badge(status) {
    const known = STATUSES.includes(status);
    const node = el("span", "badge " + (known ? "badge-" + status.toLowerCase() : "badge-unknown"), status);
    return node;
  }

  function setBadge(node, status) {
    const known = STATUSES.includes(status);
    node.className = "badge " + (known ? "badge-" + status.toLowerCase() : "badge-unknown");
    setText(node, status);
  }

  // ---- token and identity --------------------------------------------------------------------

  async function loadWhoami() {
    const out = $("whoami");
    const mine = $("filter-mine");
    show($("token-error"), false);
    try {
      state.whoami = await api("whoami");
    } catch (err) {
      state.whoami = null;
      if (err.status === 401) {
        setText(out, token() ? "" : "No token: enter one to see and submit tasks.");
        if (token()) showError($("token-error"), "The server refused this token: " + err.message);
      } else {
        setText(out, "Cannot check the token: " + err.message);
      }
    }
    const who = state.whoami;
    if (who) {
      if (who.user_id === null || who.user_id === undefined) {
        setText(out, who.reads_open ? "Not signed in: reading only." : "Not signed in: enter a token to see tasks.");
      } else {
        const rights = who.admin ? "admin" : who.can_write ? "can submit" : "read only";
        setText(out, "Signed in as user " + who.user_id + " (" + rights + ").");
      }
    }
    const hasUser = !!(who && who.user_id !== null && who.user_id !== undefined);
    mine.disabled = !hasUser;
    if (!hasUser) mine.checked = false;
    setText($("filter-mine-hint"), hasUser ? "" : "Needs a token.");
  }

  function setupToken() {
    const input = $("token");
    input.value = token();
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
      loadWhoami().then(restartList);
      loadProfiles();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      input.value = "";
      loadWhoami().then(restartList);
    });
  }

  // ---- submit form ---------------------------------------------------------------------------

  // Split a command line into words the way a POSIX shell does for quotes and backslashes.
  function splitWords(text) {
    const words = [];
    let word = "";
    let inWord = false;
    let quote = null;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quote === "'") {
        if (c === "'") quote = null;
        else word += c;
      } else if (quote === '"') {
        if (c === '"') quote = null;
        else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) word += text[++i];
        else word += c;
      } else if (c === "'" || c === '"') {
        quote = c;
        inWord = true;
      } else if (c === "\\" && i + 1 < text.length) {
        word += text[++i];
        inWord = true;
      } else if (/\s/.test(c)) {
        if (inWord) words.push(word);
        word = "";
        inWord = false;
      } else {
        word += c;
        inWord = true;
      }
    }
    if (quote) throw new Error("a " + (quote === "'" ? "single" : "double") + " quote is not closed");
    if (inWord) words.push(word);
    return words;
  }

  function nonBlankLines(text) {
    const lines = [];
    text.split(/\r?\n/).forEach((line, index) => {
      if (line.trim() !== "") lines.push({ line: line, number: index + 1 });
    });
    return lines;
  }

  function fieldInput(field) {
    return $("f-" + field);
  }

  function fieldError(field) {
    return $("f-" + field + "-error");
  }

  function showError(node, message) {
    setText(node, message);
    show(node, true);
  }

  function clearFormErrors() {
    FORM_FIELDS.forEach((field) => {
      show(fieldError(field), false);
      setText(fieldError(field), "");
      fieldInput(field).removeAttribute("aria-invalid");
    });
    show($("form-error"), false);
  }

  function setFieldErrors(errors) {
    // errors: [[field or null, message]]; several messages for one field are joined.
    const byField = new Map();
    const general = [];
    errors.forEach(([field, message]) => {
      if (field === null) general.push(message);
      else byField.set(field, (byField.has(field) ? byField.get(field) + "; " : "") + message);
    });
    let first = null;
    FORM_FIELDS.forEach((field) => {
      if (!byField.has(field)) return;
      showError(fieldError(field), byField.get(field));
      fieldInput(field).setAttribute("aria-invalid", "true");
      if (first === null) first = fieldInput(field);
    });
    if (general.length) showError($("form-error"), general.join("; "));
    if (first) first.focus();
  }

  function readForm() {
    const errors = [];
    const name = fieldInput("name").value.trim();
    const namespace = fieldInput("namespace").value.trim() || "default";
    const image = fieldInput("image").value.trim();
    const priorityText = fieldInput("priority").value.trim();
    const priority = priorityText === "" ? null : Number(priorityText); // blank: the profile's, else 0
    if (priority !== null && !Number.isInteger(priority)) errors.push(["priority", "Enter a whole number from -1000 to 1000."]);
    if (!name) errors.push(["name", "Enter a name."]);
    if (!image) errors.push(["image", "Enter an image."]);
    let command = [];
    try {
      command = splitWords(fieldInput("command").value);
    } catch (err) {
      errors.push(["command", "Cannot split the command: " + err.message + "."]);
    }
    const argLines = nonBlankLines(fieldInput("args").value);
    const envLines = nonBlankLines(fieldInput("env").value);
    const env = [];
    envLines.forEach(({ line, number }) => {
      const match = /^\s*([^=\s][^=]*?)\s*=(.*)$/.exec(line);
      if (match) env.push({ name: match[1], value: match[2] });
      else errors.push(["env", "Line " + number + ": expected NAME=VALUE."]);
    });
    const info = { image: image };
    const profile = fieldInput("profile").value;
    if (profile) info.profile = profile;
    if (command.length) info.command = command;
    if (argLines.length) info.args = argLines.map((a) => a.line);
    if (env.length) info.env = env;
    const body = { name: name, namespace: namespace, info: info };
    if (priority !== null) body.priority = priority;
    const runAt = fieldInput("run_at").value;
    if (runAt) {
      // datetime-local is the browser's wall-clock time without an offset; send the instant it means.
      const when = new Date(runAt);
      if (isNaN(when.getTime())) errors.push(["run_at", "Enter a date and time."]);
      else body.run_at = when.toISOString();
    }
    return {
      errors: errors,
      body: body,
      lineOf: { args: argLines.map((a) => a.number), env: envLines.map((e) => e.number) },
    };
  }

  // Map a 422's `loc` (["body", "info", "env", 0, "name"]) onto the form field it names.
  function fieldForLoc(loc, lineOf) {
    const path = Array.isArray(loc) ? loc.slice(loc[0] === "body" ? 1 : 0) : [];
    if (path[0] === "name" || path[0] === "namespace" || path[0] === "run_at" || path[0] === "priority") return [path[0], ""];
    if (path[0] === "info" && FORM_FIELDS.includes(path[1]) && path[1] !== "name" && path[1] !== "namespace") {
      const field = path[1];
      const index = path[2];
      let where = "";
      if (typeof index === "number") {
        where = field === "command" ? "word " + (index + 1) + ": " : "line " + ((lineOf[field] || [])[index] || index + 1) + ": ";
      }
      return [field, where];
    }
    return [null, path.length ? path.join(".") + ": " : ""];
  }

  function serverErrors(err, lineOf, body) {
    if (err.status === 422 && err.body && Array.isArray(err.body.detail)) {
      return err.body.detail.map((d) => {
        const [field, where] = fieldForLoc(d && d.loc, lineOf);
        return [field, where + ((d && d.msg) || "invalid")];
      });
    }
    if (err.status === 409) {
      return [["name", err.message !== "HTTP 409" ? err.message :
        "A task named " + body.name + " already exists in namespace " + body.namespace + "."]];
    }
    if (err.status === 401) return [[null, "The server needs a valid API token to submit (enter it at the top)."]];
    if (err.status === 403) return [[null, "This token may not submit tasks: " + err.message]];
    return [[null, "The task was not submitted: " + err.message + (err.status ? " (HTTP " + err.status + ")" : "")]];
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearFormErrors();
    setText($("submit-result"), "");
    const form = readForm();
    if (form.errors.length) {
      setFieldErrors(form.errors);
      return;
    }
    const button = $("submit-button");
    button.disabled = true;
    setText($("submit-result"), "Submitting…");
    try {
      const task = await api("tasks", { method: "POST", json: form.body });
      setText($("submit-result"), "Submitted task " + task.id + " (" + task.name + "): " + task.status + ".");
      fieldInput("name").value = "";
      addSubmitted(task);
      refreshSummary();
    } catch (err) {
      setText($("submit-result"), "");
      setFieldErrors(serverErrors(err, form.lineOf, form.body));
    } finally {
      button.disabled = false;
    }
  }

  // "Preview Job": the exact manifest the task would get (POST /render validates as submit does).
  async function onPreview() {
    clearFormErrors();
    const out = $("job-preview");
    const form = readForm();
    if (form.errors.length) {
      setFieldErrors(form.errors);
      return;
    }
    setText(out, "Rendering…");
    show(out, true);
    try {
      const job = await api("render", { method: "POST", json: form.body });
      setText(out, JSON.stringify(job, null, 2));
    } catch (err) {
      show(out, false);
      setText(out, "");
      setFieldErrors(serverErrors(err, form.lineOf, form.body));
    }
  }

  async function loadProfiles() {
    let profiles = [];
    try {
      profiles = await api("profiles");
    } catch (err) {
      return; // no token yet, or an older server: the namespace's default profile applies
    }
    const select = fieldInput("profile");
    while (select.options.length > 1) select.remove(1);
    profiles.forEach((p) => {
      const option = document.createElement("option");
      option.value = p.name;
      option.textContent = p.name + (p.default ? " (default)" : "") + ": you set " + (p.user_fields.join(", ") || "nothing");
      select.appendChild(option);
    });
  }

  function updateCommandPreview() {
    const preview = $("f-command-preview");
    const text = fieldInput("command").value;
    if (!text.trim()) return setText(preview, "");
    try {
      setText(preview, "Words: " + JSON.stringify(splitWords(text)));
    } catch (err) {
      setText(preview, "Words: (" + err.message + ")");
    }
  }

  function setupForm() {
    $("submit-form").addEventListener("submit", onSubmit);
    $("preview-button").addEventListener("click", onPreview);
    loadProfiles();
    fieldInput("command").addEventListener("input", updateCommandPreview);
    FORM_FIELDS.forEach((field) => {
      fieldInput(field).addEventListener("input", () => {
        // An edited field's error is stale; the next submit checks it again.
        show(fieldError(field), false);
        fieldInput(field).removeAttribute("aria-invalid");
      });
    });
  }

  // ---- task list -----------------------------------------------------------------------------

  function filters() {
    const query = new URLSearchParams();
    const status = $("filter-status").value;
    const namespace = $("filter-namespace").value.trim();
    if (status) query.set("status", status);
    if (namespace) query.set("namespace", namespace);
    if ($("filter-mine").checked && state.whoami && state.whoami.user_id !== null) {
      query.set("user_id", String(state.whoami.user_id));
    }
    return query;
  }

  function matchesFilters(task) {
    const query = filters();
    if (query.has("status") && task.status !== query.get("status")) return false;
    if (query.has("namespace") && task.namespace !== query.get("namespace")) return false;
    if (query.has("user_id") && String(task.user_id) !== query.get("user_id")) return false;
    return true;
  }

  function cell(label, className) {
    const td = el("td", className);
    td.dataset.label = label;
    return td;
  }

  function buildRow(task) {
    const row = el("tr");
    row.dataset.id = String(task.id);
    row.dataset.name = task.name;
    const open = el("button", "link", task.name);
    open.type = "button";
    open.addEventListener("click", () => openDetail(task.id, open));
    const nameCell = cell("Name", "col-name");
    nameCell.append(open);
    const statusCell = cell("Status", "col-status");
    statusCell.append(badge(task.status));
    row.append(
      cell("ID", "col-id"), nameCell, cell("Namespace", "col-namespace"), statusCell,
      cell("User", "col-user"), cell("Created", "col-created"), cell("Message", "col-message"),
    );
    updateRow(row, task);
    return row;
  }

  function updateRow(row, task) {
    const cells = row.children;
    setText(cells[0], task.id);
    setText(cells[1].firstChild, task.name);
    setBadge(cells[3].firstChild, task.status);
    row.dataset.status = task.status;
    setText(cells[2], task.namespace);
    setText(cells[4], task.user_id === null || task.user_id === undefined ? "—" : task.user_id);
    if (cells[5].dataset.value !== String(task.created_at)) {
      cells[5].dataset.value = String(task.created_at);
      setTime(cells[5], task.created_at);
    }
    const message = task.message || "";
    setText(cells[6], message);
    cells[6].title = message;
  }

  // Update rows in place (keyed by id) so focus and scroll position survive every refresh.
  function render() {
    const body = $("task-rows");
    const existing = new Map();
    Array.from(body.children).forEach((row) => existing.set(row.dataset.id, row));
    const wanted = new Set(state.tasks.map((t) => String(t.id)));
    existing.forEach((row, id) => {
      if (!wanted.has(id)) row.remove();
    });
    let previous = null;
    state.tasks.forEach((task) => {
      const id = String(task.id);
      let row = existing.get(id);
      if (row && row.isConnected) updateRow(row, task);
      else row = buildRow(task);
      const expectedPlace = previous ? previous.nextSibling : body.firstChild;
      if (expectedPlace !== row) body.insertBefore(row, expectedPlace);
      previous = row;
    });
    show($("list-empty"), state.tasks.length === 0);
    show($("load-more"), state.nextCursor !== null && state.nextCursor !== undefined);
  }

  function addSubmitted(task) {
    // Show the new task at once, in the status the server stored it with, before the next refresh.
    if (!matchesFilters(task) || state.tasks.some((t) => t.id === task.id)) return;
    state.tasks.unshift(task);
    render();
  }

  async function refreshList() {
    const generation = state.generation;
    const query = filters();
    query.set("limit", String(Math.min(Math.max(PAGE_SIZE, state.tasks.length), MAX_LIMIT)));
    try {
      const page = await api("tasks?" + query.toString());
      if (generation !== state.generation) return;
      const fresh = page.items || [];
      let next = page.next_cursor;
      let tasks = fresh;
      if (next && state.tasks.length > fresh.length && fresh.length) {
        // Rows loaded beyond what one refresh asks for keep their last state and their cursor.
        const oldest = fresh[fresh.length - 1].id;
        const older = state.tasks.filter((t) => t.id < oldest);
        if (older.length) {
          tasks = fresh.concat(older);
          next = state.nextCursor;
        }
      }
      state.tasks = tasks;
      state.nextCursor = next;
      render();
      show($("list-error"), false);
      setText($("refresh-state"), "Updated " + new Date().toLocaleTimeString() + "; refreshes every 2 s.");
    } catch (err) {
      if (generation !== state.generation) return;
      const hint = err.status === 401 ? " Enter an API token at the top of the page." : "";
      showError($("list-error"), "Cannot load tasks: " + err.message + "." + hint);
    }
  }

  async function refreshSummary() {
    const out = $("summary");
    try {
      const summary = await api("summary");
      const parts = [];
      STATUSES.forEach((status) => {
        const count = (summary.counts && summary.counts[status]) || 0;
        if (count) parts.push(status + " " + count);
      });
      setText(out, "Total " + summary.total + (parts.length ? ": " + parts.join(", ") : ""));
    } catch (err) {
      setText(out, "");
    }
  }

  async function loadMore() {
    const generation = state.generation;
    const query = filters();
    query.set("limit", String(PAGE_SIZE));
    query.set("cursor", state.nextCursor);
    const button = $("load-more");
    button.disabled = true;
    try {
      const page = await api("tasks?" + query.toString());
      if (generation !== state.generation) return;
      const known = new Set(state.tasks.map((t) => t.id));
      state.tasks = state.tasks.concat((page.items || []).filter((t) => !known.has(t.id)));
      state.nextCursor = page.next_cursor;
      render();
    } catch (err) {
      showError($("list-error"), "Cannot load more tasks: " + err.message + ".");
    } finally {
      button.disabled = false;
    }
  }

  async function tick() {
    clearTimeout(state.timer);
    if (!document.hidden) {
      await Promise.all([refreshList(), refreshSummary(), state.detailId !== null ? refreshDetail() : null]);
    }
    clearTimeout(state.timer);
    state.timer = setTimeout(tick, REFRESH_MS);
  }

  function restartList() {
    clearTimeout(state.filterDebounce);
    state.generation += 1;
    state.tasks = [];
    state.nextCursor = null;
    render();
    return tick();
  }

  function setupList() {
    $("filter-status").addEventListener("change", restartList);
    $("filter-mine").addEventListener("change", restartList);
    $("filter-namespace").addEventListener("input", () => {
      clearTimeout(state.filterDebounce);
      state.filterDebounce = setTimeout(restartList, 300);
    });
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      restartList();
    });
    $("refresh-now").addEventListener("click", tick);
    $("load-more").addEventListener("click", loadMore);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) tick();
    });
  }

  // ---- detail view ---------------------------------------------------------------------------

  function fillDetail(task) {
    setText($("detail-title"), task.name);
    setBadge($("detail-status"), task.status);
    setText($("d-id"), task.id);
    setText($("d-namespace"), task.namespace);
    setText($("d-waiting"), task.waiting || "—");
    setText($("d-user"), task.user_id === null || task.user_id === undefined ? "—" : task.user_id);
    setText($("d-job"), task.job_name || "—");
    setText($("d-attempt"), task.attempt === undefined ? "—" :
      task.attempt + (task.next_attempt_at ? " (next not before " + formatTime(task.next_attempt_at) + ")" : ""));
    setTime($("d-created"), task.created_at);
    setTime($("d-started"), task.started_at);
    setTime($("d-finished"), task.finished_at);
    setText($("d-cancel-requested"), task.cancel_requested ? "yes" : "no");
    setText($("d-message"), task.message || "—");
    // A list item is a summary: no info, and a message cut to 1024 characters. It fills the dialog
    // at once; the task itself (GET /tasks/{id}, fetched right after) brings both whole.
    if (!("info" in task)) {
      setText($("d-info"), "Loading…");
    } else {
      let info = task.info;
      if (typeof info === "string") {
        try {
          info = JSON.parse(info);
        } catch (err) {
          // Not JSON: shown as stored.
        }
      }
      setText($("d-info"), typeof info === "string" ? info : JSON.stringify(info, null, 2));
    }
    const cancellable = !TERMINAL.has(task.status) && !task.cancel_requested;
    const cancelButton = $("detail-cancel");
    if (!cancellable && document.activeElement === cancelButton) $("detail-close").focus();
    show(cancelButton, cancellable);
  }

  // The task's history (GET /tasks/{id}/events): one line per status change, oldest first. Built
  // with text nodes only: a message is user and cluster text, never HTML.
  function fillTimeline(events) {
    const list = $("d-timeline");
    list.replaceChildren();
    for (const e of events) {
      const item = el("li", "timeline-event");
      item.appendChild(timeNode(e.at));
      const move = e.from_status ? " " + e.from_status + " → " + e.to_status : " submitted";
      item.appendChild(el("span", "timeline-move", " attempt " + e.attempt + move));
      if (e.failure_class) item.appendChild(el("span", "badge timeline-class", e.failure_class));
      if (e.message) item.appendChild(el("span", "timeline-message", " " + e.message));
      list.appendChild(item);
    }
  }

  // ---- output panel: follows GET /tasks/{id}/logs?follow=true while the task runs --------------

  const MAX_LOG_CHARS = 256 * 1024; // the panel keeps the end of a long output only

  function logsCommand(id) {
    return "nightwatch logs --server " + window.location.origin + " -f " + id;
  }

  function stopLogs() {
    if (state.logs === null) return;
    clearTimeout(state.logs.timer);
    state.logs.abort.abort();
    state.logs = null;
  }

  function appendLog(pre, text) {
    const nearBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    let all = pre.textContent + text;
    if (all.length > MAX_LOG_CHARS) all = all.slice(all.length - MAX_LOG_CHARS);
    pre.textContent = all;
    if (nearBottom) pre.scrollTop = pre.scrollHeight;
  }

  async function followLogs(id, fresh) {
    const pre = $("d-logs");
    if (fresh) {
      stopLogs();
      pre.textContent = "";
      setText($("d-logs-command"), logsCommand(id));
    }
    const abort = new AbortController();
    state.logs = { id: id, abort: abort, timer: null };
    const headers = {};
    if (token()) headers.Authorization = "Bearer " + token();
    // Reconnects skip what was shown already (bytes received, as the CLI does).
    const offset = new TextEncoder().encode(pre.textContent).length;
    const query = "follow=true" + (offset ? "&offset=" + offset : "");
    pre.dataset.state = "following";
    try {
      const response = await fetch(API + "tasks/" + encodeURIComponent(id) + "/logs?" + query, {
        headers: headers, credentials: "omit", cache: "no-store", signal: abort.signal,
      });
      if (!response.ok) throw new ApiError(response.status, null);
      const reader = response.body.getReader();
      const decoder = new TextDecoder("utf-8");
      for (;;) {
        const part = await reader.read();
        if (part.done) break;
        appendLog(pre, decoder.decode(part.value, { stream: true }));
      }
      appendLog(pre, decoder.decode());
    } catch (err) {
      if (abort.signal.aborted) return;
    }
    if (state.logs === null || state.logs.id !== id || state.detailId !== id) return;
    // The stream ended: the task has, or the replica cut it. Look, and follow again if it runs.
    try {
      const task = await api("tasks/" + encodeURIComponent(id));
      if (TERMINAL.has(task.status)) {
        pre.dataset.state = "ended";
        if (!pre.textContent) pre.textContent = "(no output)";
        return;
      }
    } catch (err) {
      // Cannot look now: try again below.
    }
    if (state.logs !== null && state.logs.id === id) {
      pre.dataset.state = "waiting";
      state.logs.timer = setTimeout(() => followLogs(id, false), 2000);
    }
  }

  function openDetail(id, opener) {
    const task = state.tasks.find((t) => t.id === id);
    state.detailId = id;
    state.detailOpener = opener || null;
    setText($("detail-result"), "");
    show($("detail-error"), false);
    if (task) fillDetail(task);
    $("d-timeline").replaceChildren();
    const dialog = $("detail");
    if (!dialog.open) dialog.showModal();
    refreshDetail();
    followLogs(id, true);
  }

  async function refreshDetail() {
    const id = state.detailId;
    if (id === null) return;
    try {
      const task = await api("tasks/" + encodeURIComponent(id));
      if (state.detailId === id) fillDetail(task);
      const events = await api("tasks/" + encodeURIComponent(id) + "/events");
      if (state.detailId === id) fillTimeline(events.items);
    } catch (err) {
      if (state.detailId === id) showError($("detail-error"), "Cannot load this task: " + err.message + ".");
    }
  }

  async function cancelTask() {
    const id = state.detailId;
    if (id === null) return;
    const button = $("detail-cancel");
    button.disabled = true;
    show($("detail-error"), false);
    try {
      const task = await api("tasks/" + encodeURIComponent(id) + "/cancel", { method: "POST" });
      setText($("detail-result"), "Cancellation requested; the task ends Cancelled once its Job is stopped.");
      if (state.detailId === id) fillDetail(task);
      tick();
    } catch (err) {
      const text = err.status === 409 ? "This task has already finished: " + err.message + "." :
        err.status === 401 || err.status === 403 ? "This token may not cancel the task: " + err.message + "." :
        "The task was not cancelled: " + err.message + ".";
      showError($("detail-error"), text);
      refreshDetail();
    } finally {
      button.disabled = false;
    }
  }

  function setupDetail() {
    const dialog = $("detail");
    $("detail-close").addEventListener("click", () => dialog.close());
    $("detail-cancel").addEventListener("click", cancelTask);
    $("d-logs-copy").addEventListener("click", () => {
      const text = $("d-logs-command").textContent;
      if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    });
    // A click on the backdrop (the dialog box itself, outside its content) closes it; Escape does natively.
    dialog.addEventListener("click", (event) => {
      if (event.target !== dialog) return;
      const box = dialog.getBoundingClientRect();
      const inside = event.clientX >= box.left && event.clientX <= box.right &&
        event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) dialog.close();
    });
    dialog.addEventListener("close", () => {
      stopLogs();
      state.detailId = null;
      const opener = state.detailOpener;
      state.detailOpener = null;
      if (opener && opener.isConnected) opener.focus();
      else $("tasks-heading").focus();
    });
  }

  // ---- schedules -----------------------------------------------------------------------------

  async function loadSchedules() {
    const rows = $("schedule-rows");
    let schedules;
    try {
      schedules = await api("schedules");
    } catch (err) {
      setText($("schedules-result"), err.status === 401 ? "Enter a token to see schedules." : "Schedules: " + err.message);
      return;
    }
    setText($("schedules-result"), schedules.length ? "" : "No schedules (nightwatch schedule create ...).");
    rows.replaceChildren();
    schedules.forEach((s) => {
      const row = el("tr");
      const last = s.last_task ? s.last_task.name + " " + s.last_task.status : "";
      [s.name, s.namespace, s.cron, s.timezone, formatTime(s.last_fired_at), formatTime(s.next_fire_at), last,
        String(s.missed)].forEach((text) => row.appendChild(el("td", null, text)));
      const cell = el("td");
      const button = el("button", null, s.suspended ? "Resume" : "Pause");
      button.type = "button";
      button.setAttribute("aria-label", (s.suspended ? "Resume " : "Pause ") + s.namespace + "/" + s.name);
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await api("schedules/" + s.id + (s.suspended ? "/resume" : "/pause"), { method: "POST" });
        } catch (err) {
          setText($("schedules-result"), "Not changed: " + err.message);
        }
        loadSchedules();
      });
      cell.appendChild(button);
      row.appendChild(cell);
      rows.appendChild(row);
    });
  }

  function setupSchedules() {
    loadSchedules();
    setInterval(loadSchedules, 10000);
  }

  // ---- start ---------------------------------------------------------------------------------

  function start() {
    setupToken();
    setupForm();
    setupList();
    setupDetail();
    setupSchedules();
    loadWhoami().then(tick).then(openLinkedTask);
  }

  // A notification's link is `/?task=ID`: open that task's detail view (and its output).
  function openLinkedTask() {
    const wanted = new URLSearchParams(window.location.search).get("task");
    const id = wanted !== null && /^[0-9]{1,18}$/.test(wanted) ? Number(wanted) : null;
    if (id !== null && id > 0) openDetail(id, null);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
