"""End to end: certificate sign-in, token renewal, a seeded fault mix (nothing lost or doubled)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from batch_rotate.sim import FaultConfig, SimTenant

from .certs import app_certificate
from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., object]


def _certificate(tmp_path: Path) -> tuple[bytes, Path, Path]:
    key, cert = app_certificate()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    pem = tmp_path / "app.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert_pem
    )
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"app", key, cert, None, serialization.BestAvailableEncryption(b"pfx-pass-9")
        )
    )
    return cert_pem, pem, pfx


def _statuses(run_dir: Path) -> dict[str, str]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Row"]: row["Status"] for row in csv.DictReader(handle)}


@pytest.mark.parametrize("kind", ["pem", "pfx"])
def test_certificate_sign_in(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path, kind: str
) -> None:
    cert_pem, pem, pfx = _certificate(tmp_path)
    sim = make_sim(certificates=[cert_pem])
    env = {k: v for k, v in sim.env().items() if k != "AZURE_CLIENT_SECRET"}
    env["AZURE_CLIENT_CERTIFICATE_PATH"] = str(pem if kind == "pem" else pfx)
    if kind == "pfx":
        env["AZURE_CLIENT_CERTIFICATE_PASSWORD"] = "pfx-pass-9"
    result = run_cli(["plan", str(SAMPLE), *sim_flags(sim)], env=env)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert sim.metrics()["token_requests"] == 1
    assert "pfx-pass-9" not in result.output  # type: ignore[attr-defined]


def test_unregistered_certificate_is_refused(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    _, pem, _ = _certificate(tmp_path)
    sim = make_sim()  # no certificate registered
    env = {k: v for k, v in sim.env().items() if k != "AZURE_CLIENT_SECRET"}
    env["AZURE_CLIENT_CERTIFICATE_PATH"] = str(pem)
    result = run_cli(["plan", str(SAMPLE), *sim_flags(sim)], env=env)
    assert result.exit_code == 3
    assert "invalid_client" in result.output  # type: ignore[attr-defined]
    assert "PRIVATE KEY" not in result.output  # type: ignore[attr-defined]


def test_short_lived_tokens_are_renewed_during_a_run(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    # Tokens that live 2 s are always "within five minutes of expiry": each use renews it,
    # and any token that expires on the wire gets a 401 and one renewal.
    sim = make_sim(token_lifetime_s=2)
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--write-budget", "100/1s", *sim_flags(sim)], env=sim.env()
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    metrics = sim.metrics()
    assert metrics["token_requests"] > 2
    assert metrics["duplicate_rotations"] == 0


def test_fault_mix_loses_nothing_and_sends_nothing_twice(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(faults=FaultConfig.mix(rate=0.06, timeout_s=2.0), time_scale=20.0)
    result = run_cli(
        [
            "rotate",
            str(SAMPLE),
            "--yes",
            "--write-budget",
            "200/1s",
            "--timeout",
            "1",
            "--retry-delay",
            "0.05",
            "--max-attempts",
            "20",
            # this tenant shows an accepted rotation at once: no grace needed before a resend
            "--uncertain-grace",
            "0s",
            *sim_flags(sim),
        ],
        env=sim.env(),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (run_dir,) = run_dirs(tmp_path)
    statuses = _statuses(run_dir)
    assert len(statuses) == 50
    queued = [row for row, status in statuses.items() if status == "queued"]
    metrics = sim.metrics()
    assert sum(metrics["faults_injected"].values()) > 0
    assert metrics["rotate_accepted"] == len(queued) == 47
    assert metrics["duplicate_rotations"] == 0


def test_answers_lost_after_processing_are_checked_never_sent_twice(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    """Intune accepted the batch, then the answer was lost: the device is read, not re-sent."""
    from batch_rotate.sim.inventory import eligible

    faults = FaultConfig(
        lost_after_processing_timeout=0.02,
        lost_after_processing_reset=0.03,
        lost_after_processing_5xx=0.03,
        lost_after_processing_truncated=0.03,
        lost_after_processing_omit_ids=0.03,
        inner_503=0.02,  # and faults before processing, which must be re-sent
        connection_reset=0.02,
        timeout_s=1.5,
    )
    sim = make_sim(devices=1500, faults=faults, time_scale=40.0)
    ids = [d["id"] for d in sim.inventory if eligible(d)][:1000]
    path = tmp_path / "many.csv"
    path.write_text("managedDeviceId\n" + "\n".join(ids) + "\n", encoding="utf-8")
    result = run_cli(
        [
            "rotate",
            str(path),
            "--yes",
            "--write-budget",
            "2000/1s",
            "--read-budget",
            "4000/1s",
            "--timeout",
            "1",
            "--retry-delay",
            "0.05",
            "--max-attempts",
            "20",
            # this tenant shows an accepted rotation at once: no grace needed before a resend
            "--uncertain-grace",
            "0s",
            *sim_flags(sim),
        ],
        env=sim.env(),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (run_dir,) = run_dirs(tmp_path)
    statuses = _statuses(run_dir)
    assert set(statuses.values()) == {"queued"}
    metrics = sim.metrics()
    assert metrics["answers_lost_after_processing"] > 0  # the faults fired
    assert set(metrics["accepted_by_device"]) == set(ids)
    assert metrics["duplicate_rotations"] == 0  # no device rotated twice
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        reasons = [row["Reason"] for row in csv.DictReader(handle)]
    assert any(r.startswith("confirmed_after_lost_answer") for r in reasons)
