"""Interactive browser sign-in end to end: MSAL's authorization code flow with PKCE on a loopback
redirect, the "browser" a loopback stand-in (tests/browser.py) signing in at the simulated
identity platform; then the printed `verify` command reuses the mode and the cached tokens."""

from __future__ import annotations

import csv
import shlex
import webbrowser
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import Result

from batch_rotate.graph import interactive
from batch_rotate.sim import SimTenant

from .browser import LoopbackBrowser
from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow
ADMIN = "admin@contoso.example"


@pytest.fixture
def browser(sim: SimTenant, monkeypatch: pytest.MonkeyPatch) -> LoopbackBrowser:
    """The system browser MSAL opens (`webbrowser.open`), signing in as ADMIN."""
    stand_in = LoopbackBrowser(sim.ca_path)
    monkeypatch.setattr(webbrowser, "open", stand_in.open)
    monkeypatch.setenv("BROWSER", "none")  # never MSAL's Edge preference on Linux
    sim.sign_in_browser_as(ADMIN)
    return stand_in


def _env(sim: SimTenant) -> dict[str, str]:
    return {"AZURE_TENANT_ID": sim.config.tenant_id, "AZURE_CLIENT_ID": sim.config.client_id}


def _next_command(output: str) -> list[str]:
    line = next(x for x in output.splitlines() if x.startswith("next: batch-rotate verify "))
    words = shlex.split(line.removeprefix("next: "))
    assert words[0] == "batch-rotate"
    return words[1:]


def test_interactive_rotate_then_the_printed_verify_signs_in_silently(
    sim: SimTenant, browser: LoopbackBrowser, run_cli: Cli, tmp_path: Path
) -> None:
    cache = tmp_path / "cache" / "tokens.json"
    result = run_cli(
        [
            "rotate",
            str(SAMPLE),
            "--yes",
            "--auth",
            "interactive",
            "--token-cache",
            str(cache),
            *sim_flags(sim),
        ],
        env=_env(sim),
    )
    assert result.exit_code == 0, result.output
    assert browser.errors == []
    (opened,) = browser.visited  # one sign-in, then the token served every request
    query = parse_qs(urlsplit(opened).query)
    assert opened.startswith(f"{sim.authority_url}/oauth2/v2.0/authorize?")
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["redirect_uri"][0].startswith("http://localhost:")
    assert f"Sign in to {sim.authority_url} in your browser" in result.output
    assert "access_token" not in result.output and "code=" not in result.output
    assert sim.count("authcode_redeemed") == 1
    assert cache.is_file()
    (run_dir,) = run_dirs(tmp_path)
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        queued = [r for r in csv.DictReader(handle) if r["Status"] == "queued"]
    assert len(queued) >= 40 and sim.metrics()["rotate_accepted"] == len(queued)
    assert f"the signed-in admin {ADMIN} may rotate" in result.output

    # Exactly the command printed, no --auth: the run's record brings the mode back, and the
    # admin's cache serves it without a browser.
    sim.sign_in_browser_as(None)  # a second browser sign-in would now wait: the cache must serve
    verify = _next_command(result.stderr)
    checked = run_cli(verify, env=_env(sim))
    assert checked.exit_code == 75, checked.output  # read back at once: all still pending
    assert f"verification: pending {len(queued)}" in checked.output
    assert len(browser.visited) == 1 and sim.count("authorize_requests") == 1


def test_no_browser_prints_the_address_to_open(
    sim: SimTenant, browser: LoopbackBrowser, run_cli: Cli, tmp_path: Path
) -> None:
    browser.opens = False  # none starts; the admin opens the printed address by hand
    result = run_cli(
        [
            "plan",
            str(SAMPLE),
            "--auth",
            "interactive",
            "--token-cache",
            str(tmp_path / "c.json"),
            *sim_flags(sim),
        ],
        env=_env(sim),
    )
    assert result.exit_code == 0, result.output
    (opened,) = browser.visited
    shown = " ".join(result.output.split())
    assert "No browser could be opened: open this address on this machine" in shown
    assert opened in result.output.replace("\n", "")


def test_a_declined_consent_exits_3_naming_it(
    sim: SimTenant, browser: LoopbackBrowser, run_cli: Cli, tmp_path: Path
) -> None:
    sim.sign_in_browser_as(ADMIN, decline=True)
    result = run_cli(
        [
            "plan",
            str(SAMPLE),
            "--auth",
            "interactive",
            "--token-cache",
            str(tmp_path / "c.json"),
            *sim_flags(sim),
        ],
        env=_env(sim),
    )
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "interactive sign-in failed: access_denied: AADSTS65004" in text
    assert "declined in the browser" in text
    assert sim.count("authcode_redeemed") == 0


def test_no_sign_in_in_time_exits_3_suggesting_device_code(
    sim: SimTenant,
    browser: LoopbackBrowser,
    run_cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(interactive, "BROWSER_TIMEOUT_S", 2)
    sim.sign_in_browser_as(None)  # the admin never picks an account
    result = run_cli(
        [
            "plan",
            str(SAMPLE),
            "--auth",
            "interactive",
            "--token-cache",
            str(tmp_path / "c.json"),
            *sim_flags(sim),
        ],
        env=_env(sim),
    )
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "timed_out: no sign-in came back from the browser in 2 s" in text
    assert "or use --auth device-code" in text


def test_interactive_without_a_client_id_names_it_and_the_redirect_uri(run_cli: Cli) -> None:
    result = run_cli(
        ["plan", str(SAMPLE), "--auth", "interactive"], env={"AZURE_TENANT_ID": "contoso.com"}
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--auth interactive needs AZURE_CLIENT_ID (--client-id)" in text
    assert "redirect URI http://localhost" in text
