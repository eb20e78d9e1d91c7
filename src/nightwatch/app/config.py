"""Configuration: environment variables (NIGHTWATCH_*, nested with __) over an optional YAML file.

Everything has a default, so `nightwatch run` needs no configuration at all: a SQLite file, the
in-process lock and the local process runner. Invalid values are reported one line each, with
secrets (passwords in URLs) masked.

A use case's or an adapter's settings are defined next to it, with their defaults (`DispatchSettings`
in `usecases/dispatch.py`, `KubernetesSettings` in `adapters/kubernetes/settings.py`, `WatcherTiming`
in `watchers.py`...); this module only gathers them into sections and adds what no single one owns.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from nightwatch.adapters.apscheduler import check_cron
from nightwatch.adapters.kubernetes.settings import KubernetesSettings
from nightwatch.adapters.local.settings import LocalRunnerSettings
from nightwatch.app.usecases.cancel import CancelSettings
from nightwatch.app.usecases.dispatch import DispatchSettings
from nightwatch.app.usecases.logs import LogsSettings
from nightwatch.app.usecases.notify import NotifySettings
from nightwatch.app.usecases.spawn import SpawnSettings
from nightwatch.app.usecases.sync import RetrySettings, SyncSettings
from nightwatch.app.watchers import WatcherTiming
from nightwatch.domain.errors import InvalidTaskSpec
from nightwatch.domain.profiles import DEFAULT_PROFILE_NAME, ProfileCatalog
from nightwatch.domain.queues import QueueSettings, check_queue_name

DEFAULT_DATABASE_URL = "sqlite:///nightwatch.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = DEFAULT_DATABASE_URL
    """sqlite:///path.db (embedded default), mysql+pymysql://user:pass@host/db,
    postgresql+psycopg://user:pass@host/db, or memory:// (demos)."""
    pool_size: int = Field(default=10, gt=0, le=200)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = database_kind(url)
        if scheme is None:
            raise ValueError(
                f"unsupported database URL {mask_secrets(url)!r}: use sqlite:///FILE, mysql+pymysql://USER:PASS@HOST/DB, "
                "postgresql+psycopg://USER:PASS@HOST/DB or memory://"
            )
        return url

    @property
    def kind(self) -> str:
        """`sqlite`, `mysql`, `postgresql` or `memory` (the validator refused anything else)."""
        kind = database_kind(self.url)
        if kind is None:  # pragma: no cover - `_known_scheme` refused the URL already
            raise ValueError(f"unsupported database URL {mask_secrets(self.url)!r}")
        return kind


class LockSettings(_Section):
    backend: Literal["memory", "redis"] = "memory"
    redis_urls: list[str] = Field(default_factory=lambda: ["redis://127.0.0.1:6379/0"])
    key: str = "nightwatch:leader"
    ttl_seconds: float = Field(default=10.0, gt=0)
    renew_interval_seconds: float | None = Field(default=None, gt=0)
    """Default: a third of the TTL."""
    retry_interval_seconds: float = Field(default=1.0, gt=0)
    safety_margin_seconds: float | None = Field(default=None, ge=0)
    """Stop writing when less than this is left on the lease. Default: a fifth of the TTL."""

    @field_validator("redis_urls")
    @classmethod
    def _redis_urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("at least one Redis URL is needed")
        for url in urls:
            if not re.match(r"^(redis|rediss|unix)://", url):
                raise ValueError(f"not a Redis URL: {mask_secrets(url)!r}")
        return urls

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> LockSettings:
        if self.renew_interval_seconds is not None and self.renew_interval_seconds >= self.ttl_seconds:
            raise ValueError("renew_interval_seconds must be shorter than ttl_seconds")
        return self

    @property
    def renew_interval(self) -> float:
        return self.renew_interval_seconds or self.ttl_seconds / 3

    @property
    def safety_margin(self) -> float:
        return self.safety_margin_seconds if self.safety_margin_seconds is not None else self.ttl_seconds / 5


class RunnerSettings(KubernetesSettings, LocalRunnerSettings):
    """The `runner:` section: which runner, where tasks may run, and each runner's own settings
    (flat, so NIGHTWATCH_RUNNER__QPS and NIGHTWATCH_RUNNER__LOCAL_STATE_DIR work as they always did)."""

    backend: Literal["local", "kubernetes"] = "local"
    allowed_namespaces: list[str] = Field(default_factory=lambda: ["default"])
    default_profile: str = DEFAULT_PROFILE_NAME
    """The Job profile of a task whose `info` names none and whose namespace has none below."""
    namespace_profiles: dict[str, str] = Field(default_factory=dict)
    """Namespace -> the Job profile of its tasks that name none."""
    local_multi_user: bool = False
    """Let the local runner serve API tokens of more than one user. A local task runs as nightwatch's
    own user, so it can read nightwatch's files and other users' task files: only for users who trust
    each other with nightwatch's credentials (docs/security.md)."""


class HttpSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    """The REST API, the web page, /healthz, /readyz, and /metrics unless `metrics_port` is set."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve /metrics on this port of the same host instead (and not on `port`). None: on `port`."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names (no port) the server answers to besides the address it binds (and localhost,
    127.0.0.1 and [::1] when that is loopback); any other Host header is 400 (DNS rebinding). Bound to
    a wildcard address (0.0.0.0, ::), IP literals and these names are accepted; with no names, any Host
    is (a warning at start-up says so)."""
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """A request's headers must be complete this long after the connection opens or the previous
    response on it ends; else the connection is closed."""
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """A request's whole body must arrive this long after its headers; else 408 and the connection is
    closed."""
    keep_alive_seconds: int = Field(default=15, ge=1, le=300)
    """An idle kept-alive connection is closed after this long."""
    max_connections: int = Field(default=200, gt=0, le=100_000)
    """Open connections (and requests in flight) at most; a request beyond that gets 503 at once."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    """The request line and headers together; more and the connection gets 400 and is closed."""

    @field_validator("allowed_hosts")
    @classmethod
    def _plain_host_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", host):
                raise ValueError(f"not a host name (no scheme, port or path): {host!r}")
        return [host.lower() for host in hosts]

    @model_validator(mode="after")
    def _two_ports(self) -> HttpSettings:
        if self.metrics_port is not None and self.metrics_port == self.port != 0:
            raise ValueError("metrics_port must differ from port (leave it unset to serve /metrics on port)")
        return self


MIN_TOKEN_CHARS = 16


class ApiToken(_Section):
    """One bearer token of the REST API and the user it acts as."""

    token: SecretStr
    user_id: int = Field(ge=0)
    admin: bool = False
    """An admin token sees and cancels every user's tasks; others only their own."""

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"a token must have at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)")
        return token


class ApiSettings(_Section):
    tokens: list[ApiToken] = Field(default_factory=list)
    """Without any token, writes are refused and the server binds to 127.0.0.1 whatever http.host says."""
    reads: Literal["open", "token"] | None = None
    """open: anyone who can reach the port reads every task; token: reads need a token too, and a
    non-admin token reads only its own tasks. Default: token whenever a token is configured (with
    none, the server is loopback-only and read-only, and reads are open)."""
    metrics: Literal["open", "token"] | None = None
    """Whether /metrics needs a bearer token (any user's). Default: open on a separate
    `http.metrics_port`; on the main port, token exactly when reads need one."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Larger request bodies get 413. The domain caps `info` at 256 KiB; JSON escaping can triple
    non-ASCII text, so 1 MiB lets every acceptable `info` through."""

    @field_validator("tokens")
    @classmethod
    def _distinct_tokens(cls, tokens: list[ApiToken]) -> list[ApiToken]:
        secrets = [t.token.get_secret_value() for t in tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("the same token is listed twice (each token maps to one user)")
        return tokens

    def bind_host(self, configured: str) -> str:
        """Where the HTTP server listens: `configured`, but only loopback while no token exists
        (an API nobody can authenticate to has no business on a network interface)."""
        return configured if self.tokens else "127.0.0.1"

    def reads_are_open(self) -> bool:
        """Whether reads need no token: as configured, else open exactly when no token exists."""
        if self.reads is not None:
            return self.reads == "open"
        return not self.tokens

    def metrics_are_open(self, *, separate_port: bool) -> bool:
        """Whether /metrics needs no token: as configured, else open on its own port, and on the
        main port exactly when reads are open."""
        if self.metrics is not None:
            return self.metrics == "open"
        return separate_port or self.reads_are_open()


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NIGHTWATCH_", env_nested_delimiter="__", extra="forbid")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    lock: LockSettings = Field(default_factory=LockSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Job profiles by name (docs/profiles.md): `job` (a partial Job manifest), `user_fields`, `images`.
    Checked as a whole by `_profiles_are_valid`, one message per bad entry."""
    watchers: dict[str, WatcherTiming] = Field(default_factory=dict)
    """Per watcher: enabled, and interval_seconds or cron; what is unset keeps the watcher's own timing."""
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    queues: dict[Annotated[str, AfterValidator(check_queue_name)], QueueSettings] = Field(default_factory=dict)
    """Queue name -> what it holds and its limits, in order: a task without `info.queue` belongs to
    the first queue whose lists match it (docs/queues.md). NIGHTWATCH_QUEUES takes the same as JSON."""
    sync: SyncSettings = Field(default_factory=SyncSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    cancel: CancelSettings = Field(default_factory=CancelSettings)
    spawn: SpawnSettings = Field(default_factory=SpawnSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    """How nightwatch's own log is written (level, format)."""
    logs: LogsSettings = Field(default_factory=LogsSettings)
    """Task output: what is kept after a task ends, and the bounds of a log stream."""
    notify: NotifySettings = Field(default_factory=NotifySettings)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    replica_id: str | None = None
    """Defaults to hostname:pid:random."""

    @model_validator(mode="after")
    def _local_runner_single_user(self) -> Settings:
        # A local task runs as nightwatch's user: it can read nightwatch's configuration (every
        # token), its database file and every other task's files. Several users need an explicit yes.
        users = {token.user_id for token in self.api.tokens}
        if self.runner.backend == "local" and len(users) > 1 and not self.runner.local_multi_user:
            raise ValueError(
                f"api.tokens: tokens for {len(users)} users with runner.backend local: a local task runs as "
                "nightwatch's own user and can read nightwatch's configuration and other users' task files; "
                "use runner.backend kubernetes, or set runner.local_multi_user: true if these users trust "
                "each other with nightwatch's credentials"
            )
        return self

    @model_validator(mode="after")
    def _sync_resync(self) -> Settings:
        other = sorted(n for n, t in self.watchers.items() if t.resync_seconds is not None and n != "sync")
        if other:
            raise ValueError(f"watchers.{other[0]}.resync_seconds: only the sync watcher has a resync period")
        sync = self.watchers.get("sync")
        if sync is not None and sync.resync_seconds is not None:
            self.sync = self.sync.model_copy(update={"resync_seconds": sync.resync_seconds})
        return self

    @model_validator(mode="after")
    def _profiles_are_valid(self) -> Settings:
        self.profile_catalog()
        return self

    def profile_catalog(self) -> ProfileCatalog:
        """The Job profiles this configuration defines. Raises ValidationError, one error per bad entry."""
        try:
            return ProfileCatalog.build(self.profiles, self.runner.default_profile, self.runner.namespace_profiles)
        except InvalidTaskSpec as exc:
            errors = []
            for problem in exc.problems:
                where = ".".join(str(part) for part in problem.loc)
                error = PydanticCustomError(
                    "value_error", "{problem}", {"problem": problem.message.removeprefix(f"{where}: ")}
                )
                errors.append(InitErrorDetails(type=error, loc=problem.loc, input=None))
            raise ValidationError.from_exception_data("profiles", errors) from None

    @field_validator("watchers", mode="after")
    @classmethod
    def _cron_specs_parse(cls, watchers: dict[str, WatcherTiming]) -> dict[str, WatcherTiming]:
        # Judged by the scheduler that will run them, now rather than when the service starts.
        problems = []
        for name, timing in watchers.items():
            if timing.cron is None:
                continue
            try:
                check_cron(timing.cron)
            except ValueError as exc:
                error = PydanticCustomError("value_error", "{problem}", {"problem": str(exc)})
                problems.append(InitErrorDetails(type=error, loc=(name, "cron"), input=timing.cron))
        if problems:
            raise ValidationError.from_exception_data("watchers", problems)
        return watchers

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = _YAML_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


_YAML_FILE: dict[str, Path] = {}


class ConfigError(ValueError):
    """Invalid configuration; `lines` has one human-readable line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the configuration (env over YAML over defaults). Raises ConfigError."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError([f"config file {path} does not exist"])
        _YAML_FILE["path"] = path
    else:
        _YAML_FILE.pop("path", None)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError([_describe(error) for error in exc.errors()]) from None
    except Exception as exc:  # e.g. malformed YAML or JSON in an env var
        raise ConfigError([f"cannot read configuration: {mask_secrets(str(exc).splitlines()[0])}"]) from None
    finally:
        _YAML_FILE.pop("path", None)


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"] if p != "[key]") or "configuration"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    given = error.get("input")
    shown = "" if isinstance(given, dict | list) or given is None else f" (got {mask_secrets(str(given))!r})"
    if any("token" in str(part) for part in error["loc"]):
        shown = ""  # never echo a (wrong) API token into a log
    if error["type"] == "value_error":
        shown = ""  # our own messages already name the value, masked
    return f"{where}: {message}{shown}"


_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://\S*", re.IGNORECASE)
_SQLALCHEMY_SCHEMES = ("sqlite", "mysql", "mariadb", "postgresql", "postgres")


def mask_url(url: str) -> str:
    """`url` with its password replaced by ***, whatever the URL looks like.

    A database URL with one `@` is rendered by SQLAlchemy (`render_as_string(hide_password=True)`),
    exactly as the engine reads it. Any other URL (redis://, rediss://, unix://), and a URL whose
    password holds a raw `@` (which SQLAlchemy itself splits at the first `@`, taking the rest of the
    password for the host), goes by `_mask_user_part`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url  # no user part, nothing to hide
    if rest.count("@") == 1 and scheme.split("+")[0].lower() in _SQLALCHEMY_SCHEMES:
        from sqlalchemy.engine import make_url  # the engine's own parser; imported when needed only

        try:
            parsed = make_url(url)
        except Exception:  # not a URL SQLAlchemy reads: the generic rule still masks it
            parsed = None
        if parsed is not None and parsed.password is not None:
            return parsed.render_as_string(hide_password=True)
    return _mask_user_part(url)


def mask_secrets(text: str) -> str:
    """Replace the password of every URL in `text` (an error message, a log line) with ***. A URL runs
    to the next blank; its password, to the last `@` in it (`_mask_user_part`). A password with a blank
    in it is not a URL's any more: only the part before the blank is hidden."""
    return _URL_IN_TEXT.sub(lambda m: _mask_user_part(m[0]), text)


def _mask_user_part(url: str) -> str:
    """Hide everything between the first `:` of the user part and the LAST `@`: a password may hold
    `@`, `:` and `/`, a host holds none of them, so at worst more than the password is hidden (an `@`
    in a query string), never less."""
    scheme, _, rest = url.partition("://")
    if "@" not in rest:
        return url
    userinfo, _, location = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return url  # a user name only (redis://user@host): no password in it
    return f"{scheme}://{user}:***@{location}"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def database_kind(url: str) -> str | None:
    """`sqlite`, `mysql`, `postgresql` or `memory`, from the URL's scheme; None for anything else."""
    match = re.match(r"^(?P<scheme>[a-z0-9+]+)://", url)
    if match is None:
        return None
    scheme = match["scheme"].split("+")[0]
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    return scheme if scheme in ("sqlite", "memory") else None
