"""Who is calling, and what they may do: bearer tokens from configuration, nothing else.

There are no cookies and no sessions: the only credential is the `Authorization: Bearer` header,
which a browser never attaches on its own, so a cross-site form or script cannot act as a user
(no CSRF vector to defend). Tokens are compared in constant time, every token every time.

Rules: writes need a token. Reads need one unless reads are open. A non-admin token acts on its
own tasks only; when reads need a token it also sees only its own, and another user's task is
reported as not found (404), so ids do not reveal who else has tasks. When reads are open,
everyone sees every task, and cancelling someone else's is a 403.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, status

from nightwatch.app.config import ApiSettings
from nightwatch.domain.model import Task


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: int | None
    admin: bool = False

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None


ANONYMOUS = Caller(None)


class AccessPolicy:
    def __init__(self, settings: ApiSettings, *, reads_open: bool) -> None:
        self._tokens = [(t.token.get_secret_value().encode(), Caller(t.user_id, t.admin)) for t in settings.tokens]
        self.reads_open = reads_open

    def caller(self, authorization: str | None) -> Caller:
        """The caller for an Authorization header value (None: anonymous). Raises 401 for anything
        but a known bearer token: a wrong token is an error even where anonymous reads are fine."""
        if authorization is None:
            return ANONYMOUS
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise unauthorized("the Authorization header must be `Bearer <token>`", invalid=True)
        given = credentials.strip().encode("latin-1")  # how HTTP headers were decoded: the raw bytes again
        found: Caller | None = None
        for secret, caller in self._tokens:
            if hmac.compare_digest(secret, given):  # no early exit: time does not tell which token matched
                found = caller
        if found is None:
            raise unauthorized("invalid bearer token", invalid=True)
        return found

    def require_reader(self, caller: Caller) -> Caller:
        if not self.reads_open and not caller.authenticated:
            raise unauthorized("reading tasks needs a bearer token")
        return caller

    def require_writer(self, caller: Caller) -> Caller:
        if not caller.authenticated:
            raise unauthorized("this request needs a bearer token")
        return caller

    def scope_of(self, caller: Caller) -> int | None:
        """The only user whose tasks `caller` may read, or None for all of them."""
        if self.reads_open or caller.admin:
            return None
        return caller.user_id

    def check_readable(self, caller: Caller, task: Task) -> None:
        scope = self.scope_of(caller)
        if scope is not None and task.user_id != scope:
            raise not_found(task.id)

    def check_cancellable(self, caller: Caller, task: Task) -> None:
        self.check_readable(caller, task)
        if not caller.admin and task.user_id != caller.user_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"task {task.id} belongs to another user")


def unauthorized(detail: str, *, invalid: bool = False) -> HTTPException:
    challenge = 'Bearer realm="nightwatch"' + (', error="invalid_token"' if invalid else "")
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenge})


def not_found(task_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id {task_id}")
