"""Proxy choice (one decision for sign-in and Graph), validation, and keeping passwords out."""

from __future__ import annotations

import pytest

from batch_rotate.context import build, record_of, recorded
from batch_rotate.errors import InputError
from batch_rotate.graph.endpoints import Cloud, Endpoints
from batch_rotate.graph.errors import ConfigError
from batch_rotate.graph.proxy import check_proxy, proxy_for, redact, without_credentials
from batch_rotate.runs import redacted_argv
from batch_rotate.settings import Settings, endpoints_for

GRAPH = "https://graph.microsoft.com/beta/$batch"
LOGIN = "https://login.microsoftonline.com/contoso.example/v2.0/.well-known/openid-configuration"


def test_environment_proxy_is_used_for_both_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    assert proxy_for(GRAPH, None) == "http://proxy.corp.example:3128"
    assert proxy_for(LOGIN, None) == "http://proxy.corp.example:3128"


def test_no_proxy_suffix_bypasses_only_the_hosts_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.microsoftonline.com")
    assert proxy_for(LOGIN, None) is None
    assert proxy_for(GRAPH, None) == "http://proxy.corp.example:3128"


def test_a_proxy_without_scheme_is_read_as_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "proxy.corp.example:3128")
    assert proxy_for(GRAPH, None) == "http://proxy.corp.example:3128"


def test_http_proxy_is_not_used_for_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://plain.corp.example:8080")
    assert proxy_for(GRAPH, None) is None


def test_explicit_proxy_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "*")
    assert proxy_for(GRAPH, "http://given.corp.example:8080") == "http://given.corp.example:8080"


def test_no_proxy_configured_means_direct() -> None:
    assert proxy_for(GRAPH, None) is None


@pytest.mark.parametrize(
    "url",
    [
        "socks5://127.0.0.1:1080",
        "proxy.corp.example:3128",
        "http://",
        "http://proxy.corp.example:3128/path",
        "http://proxy.corp.example:notaport",
    ],
)
def test_unusable_proxy_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="--proxy"):
        check_proxy(url)


def test_credentials_are_used_but_redacted_when_shown() -> None:
    url = "http://svc%40corp:p%3Ass@proxy.corp.example:3128"
    assert check_proxy(url) == url
    assert redact(url) == "http://***@proxy.corp.example:3128"
    assert without_credentials(url) == ("http://proxy.corp.example:3128", "svc@corp", "p:ss")
    assert redact("http://proxy.corp.example:3128") == "http://proxy.corp.example:3128"


def test_password_never_in_repr_public_settings_or_command_line() -> None:
    endpoints = endpoints_for(
        Cloud.GLOBAL, "contoso.example", proxy="http://svc:S3cret-99@proxy.corp.example:3128"
    )
    settings = Settings(endpoints=endpoints)
    assert "S3cret-99" not in repr(settings)
    assert settings.public()["proxy"] == "http://***@proxy.corp.example:3128"
    for argv in (
        ["batch-rotate", "plan", "x.csv", "--proxy", "http://svc:S3cret-99@proxy:3128"],
        ["batch-rotate", "plan", "x.csv", "--proxy=http://svc:S3cret-99@proxy:3128"],
    ):
        line = redacted_argv(argv)
        assert "S3cret-99" not in line and "***@proxy:3128" in line


def _settings(proxy: str | None = None) -> Settings:
    return Settings(endpoints=Endpoints.for_cloud(Cloud.GLOBAL, "t", proxy=proxy))


APP = {"tenant_id": "contoso.example", "client_id": "app", "client_secret": "s3cret"}


def test_a_run_records_its_proxy_without_the_password() -> None:
    record = record_of({**APP, "proxy": "http://svc:pw@proxy.corp.example:3128"})
    assert record["proxy"] == "http://***@proxy.corp.example:3128"
    assert "s3cret" not in str(record) and "pw" not in record["proxy"]
    plain = record_of({**APP, "proxy": "http://proxy.corp.example:3128"})
    assert build({**APP, "proxy": plain["proxy"]}).settings.endpoints.proxy == plain["proxy"]
    assert recorded({})["proxy"] == ""  # runs made before --proxy: none, not the environment's


def test_a_recorded_proxy_with_credentials_must_be_given_again() -> None:
    with pytest.raises(InputError, match="give it again with --proxy"):
        build({**APP, "proxy": "http://***@proxy.corp.example:3128"})
    again = build({**APP, "proxy": "http://svc:pw@proxy.corp.example:3128"})
    assert again.settings.endpoints.proxy == "http://svc:pw@proxy.corp.example:3128"
    assert "pw@" not in repr(again.settings.endpoints) and "pw@" not in str(again.record)
