"""Cloud endpoints, option validation and what may be recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_rotate.errors import InputError
from batch_rotate.graph.errors import ConfigError
from batch_rotate.runs import redacted_argv
from batch_rotate.settings import Cloud, Credentials, Endpoints, Settings


@pytest.mark.parametrize(
    ("cloud", "login", "graph"),
    [
        (Cloud.GLOBAL, "https://login.microsoftonline.com", "https://graph.microsoft.com"),
        (Cloud.USGOV, "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        (Cloud.USGOV_DOD, "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        (Cloud.CHINA, "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_cloud_hosts_and_scope(cloud: Cloud, login: str, graph: str) -> None:
    endpoints = Endpoints.for_cloud(cloud, "tid")
    assert endpoints.authority_url == f"{login}/tid"
    assert endpoints.graph_url == graph
    assert endpoints.scope == f"{graph}/.default"


def test_overrides_and_scope_follow_graph_url(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    endpoints = Endpoints.for_cloud(
        Cloud.GLOBAL,
        "tid",
        graph_url="https://127.0.0.1:9/",
        authority_url="https://127.0.0.1:9/tid",
        ca_bundle=ca,
    )
    assert endpoints.graph_url == "https://127.0.0.1:9"
    assert endpoints.scope == "https://127.0.0.1:9/.default"
    assert endpoints.ca_bundle == ca


@pytest.mark.parametrize("url", ["http://graph.example", "graph.example"])
def test_plain_http_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="https"):
        Endpoints.for_cloud(Cloud.GLOBAL, "t", graph_url=url)


def test_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--ca-bundle"):
        Endpoints.for_cloud(Cloud.GLOBAL, "t", ca_bundle=tmp_path / "nope.pem")


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 21), ("batch_size", 0), ("max_concurrency", 0), ("max_attempts", 0)],
)
def test_out_of_range_options_are_refused(field: str, value: int) -> None:
    with pytest.raises(InputError):
        Settings(endpoints=Endpoints.for_cloud(Cloud.GLOBAL, "t"), **{field: value})  # type: ignore[arg-type]


def test_credentials_repr_hides_secret() -> None:
    creds = Credentials("t", "c", client_secret="s3cr3t-value")
    assert "s3cr3t" not in repr(creds) and "s3cr3t" not in str(creds)


def test_command_line_is_recorded_without_secrets() -> None:
    argv = [
        "batch-rotate",
        "rotate",
        "a.csv",
        "--client-secret",
        "hunter2",
        "--certificate-password=pw1",
    ]
    text = redacted_argv(argv)
    assert "hunter2" not in text and "pw1" not in text
    assert "--client-secret ***" in text and "--certificate-password=***" in text


def test_an_upper_case_scheme_is_accepted_and_normalised() -> None:
    """`HTTPS://` is https (RFC 3986: the scheme and host are case-insensitive)."""
    from batch_rotate.graph.endpoints import Cloud
    from batch_rotate.settings import endpoints_for

    endpoints = endpoints_for(
        Cloud.GLOBAL,
        "00000000-0000-4000-8000-00000000a11c",
        graph_url="HTTPS://Graph.Example.COM/",
        authority_url="HTTPS://Login.Example.com/Tenant",
    )
    assert endpoints.graph_url == "https://graph.example.com"
    assert endpoints.authority_url == "https://login.example.com/Tenant"
    assert endpoints.scope == "https://graph.example.com/.default"
