"""End to end through a real CONNECT proxy (proxy.py, started here): sign-in and Graph both use it.

The simulated tenant answers on one port under two names its certificate holds: the authority is
reached as 127.0.0.1 and Graph as localhost, so the proxy's CONNECT log tells the two apart.
"""

from __future__ import annotations

import csv
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]
PASSWORD = "pr0xy-Pa55-Zq8"


@dataclass
class Proxy:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connects(
        self, *, settle_s: float = 5.0, expect: tuple[str, ...] = (), skip: int = 0
    ) -> list[str]:
        """CONNECT targets logged after the first `skip` (a tunnel is logged when it closes, so
        wait up to `settle_s` for every target in `expect`)."""
        deadline = time.monotonic() + settle_s
        while True:
            text = self.log.read_text(encoding="utf-8", errors="replace")
            found = re.findall(r" - CONNECT (\S+) - ", text)[skip:]
            if all(target in found for target in expect) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def _start_proxy(workdir: Path, *extra: str) -> Iterator[Proxy]:
    workdir.mkdir(parents=True, exist_ok=True)
    port_file, log = workdir / "port", workdir / "proxy.log"
    log.touch()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy",
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--num-acceptors",
            "1",
            "--num-workers",
            "1",
            "--log-level",
            "INFO",
            "--log-file",
            str(log),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, f"proxy.py exited: {log.read_text()}"
            assert time.monotonic() < deadline, "proxy.py did not start"
            time.sleep(0.05)
        yield Proxy(int(port_file.read_text().strip()), log)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    yield from _start_proxy(tmp_path / "proxy")


@pytest.fixture
def auth_proxy(tmp_path: Path) -> Iterator[Proxy]:
    """A proxy that answers 407 unless the client sends Basic user:PASSWORD."""
    yield from _start_proxy(tmp_path / "auth-proxy", "--basic-auth", f"batch:{PASSWORD}")


def _split_flags(sim: SimTenant) -> list[str]:
    """Authority as 127.0.0.1, Graph as localhost (the token's audience stays the sim's own)."""
    graph = f"https://localhost:{sim.port}"
    return [
        "--authority-url",
        sim.authority_url,
        "--graph-url",
        graph,
        "--scope",
        f"{sim.base_url}/.default",
        "--ca-bundle",
        str(sim.ca_path),
    ]


def _targets(sim: SimTenant) -> tuple[str, str]:
    return f"127.0.0.1:{sim.port}", f"localhost:{sim.port}"


def _everything_written(run_dir: Path, output: str) -> list[str]:
    texts = [output, *(p.read_bytes().decode("latin-1") for p in run_dir.iterdir())]
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        texts.extend(str(row) for row in db.execute("SELECT * FROM meta"))
    book = openpyxl.load_workbook(run_dir / "report.xlsx", read_only=True)
    texts.extend(
        str(value)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    )
    book.close()
    return texts


def _meta(run_dir: Path) -> dict[str, str]:
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())


def test_rotate_through_proxy_option_with_credentials(
    sim: SimTenant, auth_proxy: Proxy, run_cli: Cli, tmp_path: Path
) -> None:
    proxy_url = f"http://batch:{PASSWORD}@127.0.0.1:{auth_proxy.port}"
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", *_split_flags(sim), "--proxy", proxy_url], env=sim.env()
    )
    assert result.exit_code == 0, result.output
    authority, graph = _targets(sim)
    seen = auth_proxy.connects(expect=(authority, graph))
    assert authority in seen  # MSAL: OpenID configuration and token
    assert graph in seen  # aiohttp: every Graph call
    assert set(seen) == {authority, graph}
    assert sim.metrics()["rotate_accepted"] >= 40
    (run_dir,) = run_dirs(tmp_path)
    # recorded without the password, everywhere (journal, command line, report, output)
    assert _meta(run_dir)["proxy"] == f"http://***@127.0.0.1:{auth_proxy.port}"
    for text in _everything_written(run_dir, result.output):
        assert PASSWORD not in text


def test_wrong_proxy_password_exits_3_without_printing_it(
    sim: SimTenant, auth_proxy: Proxy, run_cli: Cli
) -> None:
    proxy_url = f"http://batch:not-{PASSWORD}@127.0.0.1:{auth_proxy.port}"
    result = run_cli(["plan", str(SAMPLE), *_split_flags(sim), "--proxy", proxy_url], env=sim.env())
    assert result.exit_code == 3, result.output
    assert f"through the proxy http://***@127.0.0.1:{auth_proxy.port}" in result.output
    assert PASSWORD not in result.output
    assert sim.metrics()["rotate_calls"] == 0


def test_https_proxy_from_the_environment_carries_sign_in_and_graph(
    sim: SimTenant, proxy: Proxy, run_cli: Cli, tmp_path: Path
) -> None:
    env = {**sim.env(), "HTTPS_PROXY": proxy.url}
    result = run_cli(["plan", str(SAMPLE), *_split_flags(sim)], env=env)
    assert result.exit_code == 0, result.output
    authority, graph = _targets(sim)
    assert set(proxy.connects(expect=(authority, graph))) == {authority, graph}
    (run_dir,) = run_dirs(tmp_path)
    assert _meta(run_dir)["proxy"] == ""  # the environment's proxy is the environment's


def test_no_proxy_bypasses_the_proxy_for_both(sim: SimTenant, proxy: Proxy, run_cli: Cli) -> None:
    env = {**sim.env(), "HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1,localhost"}
    result = run_cli(["plan", str(SAMPLE), *_split_flags(sim)], env=env)
    assert result.exit_code == 0, result.output
    assert proxy.connects(settle_s=1.0) == []
    metrics = sim.metrics()
    assert metrics["token_requests"] >= 1 and metrics["graph_requests"] >= 1


def test_verify_reuses_the_recorded_proxy(
    sim: SimTenant, proxy: Proxy, run_cli: Cli, tmp_path: Path
) -> None:
    # one name for both here: verify follows Graph's absolute links, which name the sim's host
    first = run_cli(
        ["rotate", str(SAMPLE), "--yes", *sim_flags(sim), "--proxy", proxy.url], env=sim.env()
    )
    assert first.exit_code == 0, first.output
    target = f"127.0.0.1:{sim.port}"
    before = len(proxy.connects(expect=(target,)))
    graph_before = sim.metrics()["graph_requests"]
    (run_dir,) = run_dirs(tmp_path)
    again = run_cli(["verify", str(run_dir)], env=sim.env())  # no --proxy: the recorded one
    assert again.exit_code == 75, again.output  # answered: every device still pending
    assert sim.metrics()["graph_requests"] > graph_before
    assert proxy.connects(expect=(target,), skip=before).count(target) >= 2  # sign-in, Graph


def test_graph_tls_is_verified_through_the_tunnel(
    sim: SimTenant, proxy: Proxy, run_cli: Cli, tmp_path: Path
) -> None:
    # Sign-in trusts the sim through REQUESTS_CA_BUNDLE; Graph has no --ca-bundle: it must refuse.
    flags = [f for f in _split_flags(sim) if f not in ("--ca-bundle", str(sim.ca_path))]
    env = {**sim.env(), "REQUESTS_CA_BUNDLE": str(sim.ca_path)}
    args = ["plan", str(SAMPLE), *flags, "--proxy", proxy.url, "--max-attempts", "1"]
    result = run_cli(args, env=env)
    assert sim.metrics()["token_requests"] == 1
    assert sim.metrics()["graph_requests"] == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        reasons = [row["Reason"] for row in csv.DictReader(handle) if row["Status"] == "failed"]
    assert reasons and all("is not trusted" in r and "--ca-bundle" in r for r in reasons)


def test_managed_identity_never_goes_through_the_proxy(
    sim: SimTenant, proxy: Proxy, run_cli: Cli
) -> None:
    """The identity endpoint (reached as 127.0.0.1) is asked directly, its identity header
    never crosses a proxy; Graph (as localhost) still goes through the environment's proxy."""
    env = {
        "IDENTITY_ENDPOINT": f"{sim.base_url}/msi/token",
        "IDENTITY_HEADER": sim.config.identity_header,
        "REQUESTS_CA_BUNDLE": str(sim.ca_path),
        "HTTPS_PROXY": proxy.url,
        "HTTP_PROXY": proxy.url,
    }
    flags = _split_flags(sim)
    result = run_cli(["plan", str(SAMPLE), "--auth", "managed-identity", *flags], env=env)
    assert result.exit_code == 0, result.output
    _, graph = _targets(sim)
    assert sim.count("managed_identity_requests") >= 1
    assert set(proxy.connects(expect=(graph,))) == {graph}  # never the identity endpoint
