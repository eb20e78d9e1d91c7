"""The `api` configuration section: token rules, where the server binds, whether reads are open."""

from __future__ import annotations

import json

import pytest

from nightwatch.app.config import ApiSettings, ConfigError, load_settings

TOKEN = "0123456789abcdef-secret"


def test_tokens_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTWATCH_API__TOKENS", json.dumps([{"token": TOKEN, "user_id": 3, "admin": True}]))
    (token,) = load_settings().api.tokens
    assert (token.token.get_secret_value(), token.user_id, token.admin) == (TOKEN, 3, True)
    assert TOKEN not in repr(load_settings())


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([{"token": "short-secret", "user_id": 1}], "at least 16 characters"),
        ([{"token": TOKEN, "user_id": 1}, {"token": TOKEN, "user_id": 2}], "listed twice"),
        ([{"token": TOKEN, "user_id": -1}], "greater than or equal to 0"),
        ([{"token": TOKEN}], "user_id: Field required"),
    ],
)
def test_bad_tokens_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, tokens: list[dict[str, object]], message: str
) -> None:
    monkeypatch.setenv("NIGHTWATCH_API__TOKENS", json.dumps(tokens))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert message in str(raised.value)
    assert "short-secret" not in str(raised.value) and TOKEN not in str(raised.value)


def test_without_tokens_the_server_binds_loopback_whatever_http_host_says() -> None:
    assert ApiSettings().bind_host("0.0.0.0") == "127.0.0.1"
    with_token = ApiSettings.model_validate({"tokens": [{"token": TOKEN, "user_id": 1}]})
    assert with_token.bind_host("0.0.0.0") == "0.0.0.0"


@pytest.mark.parametrize(
    ("reads", "tokens", "open_"),
    [
        (None, [], True),  # no token: loopback only and read-only, reads open
        (None, [{"token": TOKEN, "user_id": 1}], False),  # issue 14: was open on loopback
        ("open", [{"token": TOKEN, "user_id": 1}], True),  # an explicit choice
        ("token", [], False),
    ],
)
def test_reads_need_a_token_by_default_whenever_tokens_are_configured(
    reads: str | None, tokens: list[dict[str, object]], open_: bool
) -> None:
    assert ApiSettings.model_validate({"reads": reads, "tokens": tokens}).reads_are_open() is open_


@pytest.mark.parametrize(
    ("metrics", "reads", "separate_port", "open_"),
    [
        (None, "token", True, True),  # its own port: open, the port is kept apart by the network
        (None, "token", False, False),  # on the main port: as reads
        (None, "open", False, True),
        ("token", "open", True, False),
        ("open", "token", False, True),
    ],
)
def test_metrics_are_open_on_their_own_port_else_as_reads(
    metrics: str | None, reads: str, separate_port: bool, open_: bool
) -> None:
    api = ApiSettings.model_validate({"metrics": metrics, "reads": reads})
    assert api.metrics_are_open(separate_port=separate_port) is open_
