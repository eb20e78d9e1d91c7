"""Settings from defaults, YAML and environment variables, and their error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nightwatch.app.config import ConfigError, Settings, database_kind, load_settings, mask_secrets
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
