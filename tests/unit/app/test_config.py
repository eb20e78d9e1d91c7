"""Settings from defaults, YAML and environment variables, and their error messages."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from nightwatch.app.config import ConfigError, Settings, database_kind, load_settings, mask_secrets, mask_url
from nightwatch.app.watchers import WatcherTiming, default_registry

EXAMPLE = Path(__file__).parents[3] / "deploy" / "nightwatch.example.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("NIGHTWATCH_"):
            monkeypatch.delenv(key)


def timing(s: Settings) -> dict[str, WatcherTiming]:
    """Each built-in watcher's effective timing under these settings (configured, else its own)."""
    return default_registry(load_plugins=False).effective_timing(s.watchers)


def test_defaults_need_no_configuration() -> None:
    s = load_settings()
    assert s.database.url.startswith("sqlite:///") and s.lock.backend == "memory" and s.runner.backend == "local"
    assert s.runner.allowed_namespaces == ["default"]
    assert timing(s)["dispatch"].interval_seconds == 1.0 and timing(s)["sync"].interval_seconds == 2.0
    assert s.lock.renew_interval == pytest.approx(s.lock.ttl_seconds / 3)


def test_environment_variables_nest_and_take_json_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTWATCH_LOCK__BACKEND", "redis")
    monkeypatch.setenv("NIGHTWATCH_LOCK__REDIS_URLS", '["redis://a:6379/0","redis://b:6379/0"]')
    monkeypatch.setenv("NIGHTWATCH_WATCHERS__SYNC__INTERVAL_SECONDS", "5")
    monkeypatch.setenv("NIGHTWATCH_RUNNER__QPS", "0")
    s = load_settings()
    assert s.lock.redis_urls == ["redis://a:6379/0", "redis://b:6379/0"]
    assert timing(s)["sync"].interval_seconds == 5 and timing(s)["dispatch"].interval_seconds == 1.0
    assert s.runner.qps == 0


def test_environment_wins_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("dispatch:\n  workers: 3\n  batch_size: 50\nwatchers:\n  sync:\n    cron: '*/5 * * * *'\n")
    monkeypatch.setenv("NIGHTWATCH_DISPATCH__WORKERS", "5")
    s = load_settings(config)
    assert (s.dispatch.workers, s.dispatch.batch_size) == (5, 50)
    assert s.watchers["sync"].cron == "*/5 * * * *" and s.watchers["sync"].interval_seconds is None
    assert (timing(s)["sync"].cron, timing(s)["sync"].interval_seconds) == ("*/5 * * * *", None)
    assert timing(s)["cancel"].interval_seconds == 1.0  # configuring one watcher keeps the others' timing


def test_the_example_file_documents_every_key_and_loads() -> None:
    documented = yaml.safe_load(EXAMPLE.read_text())
    defaults = Settings().model_dump()
    for section, values in defaults.items():
        assert section in documented, f"{section} is not in the example"
        if isinstance(values, dict) and section != "watchers":
            assert set(values) == set(documented[section]), section
    s = load_settings(EXAMPLE)
    assert s.model_dump() == Settings().model_dump() | {"replica_id": None}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"NIGHTWATCH_RUNNER__BACKEND": "nomad"},
            "runner.backend: Input should be 'local' or 'kubernetes' (got 'nomad')",
        ),
        ({"NIGHTWATCH_DISPATCH__WORKERS": "0"}, "dispatch.workers: Input should be greater than 0 (got '0')"),
        ({"NIGHTWATCH_DATABASE__URL": "mysql://root:s3cret@db"}, None),
        (
            {"NIGHTWATCH_DATABASE__URL": "oracle://root:s3cret@db/x"},
            "database.url: unsupported database URL 'oracle://root:***@db/x'",
        ),
        ({"NIGHTWATCH_LOCK__REDIS_URLS": '["http://x"]'}, "lock.redis_urls: not a Redis URL: 'http://x'"),
        ({"NIGHTWATCH_LOCK__RENEW_INTERVAL_SECONDS": "20"}, "renew_interval_seconds must be shorter than ttl_seconds"),
        (
            {"NIGHTWATCH_WATCHERS__SYNC__CRON": "* * * * *", "NIGHTWATCH_WATCHERS__SYNC__INTERVAL_SECONDS": "1"},
            "not both",
        ),
        (
            {"NIGHTWATCH_WATCHERS__SYNC__CRON": "61 * * * *"},
            "watchers.sync.cron: invalid cron spec '61 * * * *'",
        ),
        ({"NIGHTWATCH_WATCHERS__CANCEL__CRON": "* * *"}, "watchers.cancel.cron: invalid cron spec '* * *'"),
        ({"NIGHTWATCH_SYNC__PAGE_SIZE": "0"}, "sync.page_size: Input should be greater than 0 (got '0')"),
        ({"NIGHTWATCH_CANCEL__BATCH_SIZE": "-1"}, "cancel.batch_size: Input should be greater than 0 (got '-1')"),
        ({"NIGHTWATCH_BOGUS": "1"}, None),
    ],
)
def test_errors_are_one_line_each_and_mask_passwords(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if expected is None:
        load_settings()  # valid (the unknown env var is not ours to judge: pydantic ignores unprefixed noise)
        return
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert any(expected in line for line in info.value.lines), info.value.lines
    assert "s3cret" not in str(info.value)


def test_unknown_keys_in_yaml_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("lock:\n  ttl: 3\n")
    with pytest.raises(ConfigError, match=r"lock\.ttl: unknown setting"):
        load_settings(config)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lock: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings(bad)


def test_helpers() -> None:
    assert mask_secrets("mysql+pymysql://root:pw@h/db and redis://:pw2@r:1") == (
        "mysql+pymysql://root:***@h/db and redis://:***@r:1"
    )
    assert [database_kind(u) for u in ("postgresql+psycopg://a@b/c", "postgres://a@b/c")] == ["postgresql"] * 2
    assert [database_kind(u) for u in ("sqlite:///x", "mysql+pymysql://a@b/c", "memory://", "pg://x", "x")] == [
        "sqlite",
        "mysql",
        "memory",
        None,
        None,
    ]


def test_a_bad_cron_spec_in_yaml_is_one_line_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("watchers:\n  sync:\n    cron: '*/5 * * *'\n  dispatch:\n    cron: '0 * * * *'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert len(info.value.lines) == 1, info.value.lines
    assert info.value.lines[0].startswith("watchers.sync.cron: invalid cron spec '*/5 * * *': "), info.value.lines


def test_sections_reach_their_settings_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTWATCH_SYNC__WRITERS", "3")
    monkeypatch.setenv("NIGHTWATCH_CANCEL__BATCH_SIZE", "50")
    monkeypatch.setenv("NIGHTWATCH_DISPATCH__MAX_TASKS_PER_TICK", "1000")
    monkeypatch.setenv("NIGHTWATCH_RUNNER__LOCAL_STATE_DIR", "/tmp/jobs")
    s = load_settings()
    assert (s.sync.writers, s.sync.page_size, s.cancel.batch_size) == (3, 5000, 50)
    assert s.dispatch.max_tasks_per_tick == 1000 and s.runner.local_state_dir == "/tmp/jobs"


# -- masking passwords in URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("mysql+pymysql://u:secret@h/db", "mysql+pymysql://u:***@h/db"),
        ("mysql+pymysql://u:p@ss@w0rd@h:3306/db", "mysql+pymysql://u:***@h:3306/db"),  # issue 14: was u:***@ss@w0rd@h
        ("mysql+pymysql://u:p/a:ss%40w@h/db", "mysql+pymysql://u:***@h/db"),
        ("mysql+pymysql://u@h/db", "mysql+pymysql://u@h/db"),
        ("mysql+pymysql://h/db", "mysql+pymysql://h/db"),
        ("sqlite:///nightwatch.db", "sqlite:///nightwatch.db"),
        ("memory://", "memory://"),
        ("redis://:pass@r:6379/0", "redis://:***@r:6379/0"),
        ("redis://:p@ss/w@r:6379/0", "redis://:***@r:6379/0"),
        ("rediss://user:pass@r", "rediss://user:***@r"),
        ("redis://user@r", "redis://user@r"),
        ("redis://r:6379", "redis://r:6379"),
        ("unix://:pass@/run/redis.sock", "unix://:***@/run/redis.sock"),
    ],
)
def test_every_url_shape_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_secrets(f"cannot connect to {url!r}: refused") == f"cannot connect to {masked!r}: refused"


URL_TEMPLATES = (
    "mysql+pymysql://nightwatch:{}@db.example:3306/nightwatch",
    "mariadb://:{}@db.example/nightwatch",
    "redis://:{}@redis.example:6379/0",
    "rediss://lock:{}@redis.example",
    "unix://:{}@/run/redis.sock",
)


@given(st.sampled_from(URL_TEMPLATES), st.text(min_size=1, max_size=40), st.booleans())
def test_whatever_the_password_masking_never_shows_it(template: str, password: str, encode: bool) -> None:
    written = quote(password, safe="") if encode else password
    shown = template.format("***")
    assume(password not in shown and written not in shown)  # a password like "db" is in every URL
    url = template.format(written)
    masked = mask_url(url)
    assert password not in masked and written not in masked, masked
    if not any(c.isspace() for c in written):  # a blank ends a URL in free text
        assert masked == shown
        # The text around the URL is kept as it was; the URL inside it is masked exactly as on its own
        # (a one-letter password may well appear in the surrounding words).
        assert mask_secrets(f"error: {url} (retrying)") == f"error: {shown} (retrying)"


# -- the local runner and several users -------------------------------------------------------------


def tokens_for(*users: int) -> str:
    return json.dumps(
        [{"token": f"token-{i}-of-user-{user}-0123456789", "user_id": user} for i, user in enumerate(users)]
    )


def test_the_local_runner_refuses_tokens_of_several_users_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTWATCH_API__TOKENS", tokens_for(1, 2))
    with pytest.raises(ConfigError) as info:
        load_settings()
    (line,) = info.value.lines
    assert "api.tokens" in line and "runner.backend" in line and "runner.local_multi_user" in line
    assert "token-of-user" not in line
    assert "other users' task files" in line  # says why

    monkeypatch.setenv("NIGHTWATCH_RUNNER__LOCAL_MULTI_USER", "true")
    assert load_settings().runner.local_multi_user is True
    monkeypatch.delenv("NIGHTWATCH_RUNNER__LOCAL_MULTI_USER")
    monkeypatch.setenv("NIGHTWATCH_RUNNER__BACKEND", "kubernetes")
    assert len(load_settings().api.tokens) == 2
    monkeypatch.delenv("NIGHTWATCH_RUNNER__BACKEND")
    monkeypatch.setenv("NIGHTWATCH_API__TOKENS", tokens_for(1, 1))  # two tokens, one user: fine
    assert len(load_settings().api.tokens) == 2


def test_an_unsupported_database_url_lists_every_supported_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", "oracle://db/x")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    for scheme in ("sqlite:///", "mysql+pymysql://", "postgresql+psycopg://", "memory://"):
        assert scheme in str(raised.value)
    assert Settings.model_validate({"database": {"url": "postgres://u@h/db"}}).database.kind == "postgresql"


def test_queues_from_json_and_one_message_per_bad_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    good = {"team-a": {"namespaces": ["a"], "max_in_flight": 20, "fair_share": True}, "rest": {}}
    monkeypatch.setenv("NIGHTWATCH_QUEUES", json.dumps(good))
    assert list(load_settings().queues) == ["team-a", "rest"]  # the order is the matching order
    bad = {"ok": {}, "bad name!": {}, "b": {"max_in_flight": -1, "colour": 1}}
    monkeypatch.setenv("NIGHTWATCH_QUEUES", json.dumps(bad))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert raised.value.lines == [
        "queues.bad name!: queue name 'bad name!' must be 1 to 63 letters, digits, '.', '_' or '-'",
        "queues.b.max_in_flight: Input should be greater than or equal to 0 (got '-1')",
        "queues.b.colour: unknown setting",
    ]
