"""Delegated sign-in through the admin's proxy: the device code flow's requests (discovery,
/devicecode, token polls) take `--proxy` as the app sign-in and Graph do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.targeting import TargetingConfig

from .test_proxy_e2e import Proxy, _split_flags, _start_proxy, _targets

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    yield from _start_proxy(tmp_path / "proxy")


def test_device_code_sign_in_goes_through_the_proxy_option(
    make_sim: Callable[..., SimTenant], proxy: Proxy, run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(targeting=TargetingConfig(), devices=50)
    sim.approve_device_codes("admin@contoso.example")
    env = {"AZURE_TENANT_ID": sim.config.tenant_id, "AZURE_CLIENT_ID": sim.config.client_id}
    result = run_cli(
        [
            "select",
            "--all-windows",
            "--auth",
            "device-code",
            "--token-cache",
            str(tmp_path / "cache.json"),
            "--out",
            str(tmp_path / "out.csv"),
            *_split_flags(sim),
            "--proxy",
            proxy.url,
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "enter the code" in result.output
    authority, graph = _targets(sim)
    # The authority is reached as 127.0.0.1 and only sign-in goes there: a tunnel to it is the
    # device code flow's own (discovery, /devicecode and the token polls).
    assert set(proxy.connects(expect=(authority, graph))) == {authority, graph}
    assert sim.count("devicecode_requests") == 1
