"""LiveProfiles: a reload swaps the whole catalog in one reference; a bad file keeps the old one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nightwatch.app.config import load_settings
from nightwatch.app.container import build_container
from nightwatch.app.profiles import LiveProfiles
from nightwatch.domain.profiles import ProfileCatalog


def load(path: str | Path | None) -> ProfileCatalog:
    return load_settings(path).profile_catalog()


def test_reload_swaps_the_catalog_and_a_bad_file_keeps_the_old_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("profiles:\n  gpu:\n    images: ['registry.example/ml/']\n")
    live = LiveProfiles(load(config))
    first = live.catalog()
    assert set(first.profiles) == {"default", "restricted", "gpu"}

    config.write_text("profiles:\n  gpu: {}\n  tpu: {}\n")
    assert live.reload(config, load)
    assert set(live.catalog().profiles) == {"default", "restricted", "gpu", "tpu"}

    kept = live.catalog()
    config.write_text("profiles:\n  bad:\n    job: {spec: {template: {spec: {hostNetwork: true}}}}\n")
    with caplog.at_level(logging.ERROR):
        assert not live.reload(config, load)
    assert live.catalog() is kept
    assert "profiles.bad.job.spec.template.spec.hostNetwork: is refused" in caplog.text


def test_submission_and_dispatch_read_the_container_s_live_profiles() -> None:
    container = build_container({"database": {"url": "memory://"}, "profiles": {"gpu": {}}}, load_plugins=False)
    live = container.profiles()
    assert container.submission_policy().profiles is live
    assert container.watcher_context().policy.profiles is live
    live.replace(ProfileCatalog())
    assert "gpu" not in container.submission_policy().profiles.catalog().profiles
