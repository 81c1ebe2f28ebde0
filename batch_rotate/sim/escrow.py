"""What devices do after a rotate request: check in (or not), rotate, escrow keys, or fail.

Each device's behaviour is a seeded function of its id, so tests know the ground truth. Time is
scaled like the throttling windows: a device that checks in after 600 s does so after 600/scale.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from batch_rotate.sim.clock import TenantClock, device_fraction, iso

# HRESULTs (GRAPH_NOTES.md), as Graph returns them: signed Int32.
FAILURE_CODES = (-2144272166, -2144272165, -2144272159, -2144272295, -2144272376)
# Codes seen in the field on old results (issue 10 item 3: 0x8031004A, 0x8000FFFF, 0x80310012,
# 0x8031002D) and the generic invalid parameter (0x80070057).
STALE_CODES = tuple(
    code - 2**32 for code in (0x8031004A, 0x8000FFFF, 0x80310012, 0x8031002D, 0x80070057)
)
ROTATE_RESULT_TYPE = "#microsoft.graph.rotateBitLockerKeysDeviceActionResult"
OS_VOLUME, FIXED_VOLUME = "operatingSystemVolume", "fixedDataVolume"
KEY_LIMIT = 200


class FleetWriter(Protocol):
    def set_property(self, device_id: str, prop: str, value: Any) -> None: ...

    def record_action(self, device_id: str, action: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Behaviour:
    """A device's hidden truth."""

    checkin_after_s: float | None  # simulated seconds after the request; None: never
    outcome: str  # "rotate", "fail", "not_supported"
    error_code: int | None
    volumes: tuple[str, ...]
    initial_keys: int


@dataclass
class EscrowConfig:
    checkin_mean_s: float = 1800.0
    never_share: float = 0.05
    fail_share: float = 0.05
    not_supported_share: float = 0.02
    ceiling_share: float = 0.02  # devices already holding 200 keys
    near_ceiling_share: float = 0.02  # devices holding 192 keys (flagged, still rotate)
    fixed_drive_share: float = 0.3


@dataclass
class _Pending:
    requested_real: float
    requested_iso: str


@dataclass
class Escrow:
    seed: int
    time_scale: float
    config: EscrowConfig = field(default_factory=EscrowConfig)
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by Entra device id
    pending: dict[str, _Pending] = field(default_factory=dict)  # by Intune device id
    clock: TenantClock = field(default_factory=TenantClock)  # the tenant's stamps
    monotonic: Callable[[], float] = time.monotonic  # when check-ins fall due (scaled)
    # Seeded key ages for the `select` stage (sim/targeting.py); None keeps the fixed 2025 keys.
    initial_keys: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
    # A year of sweeps (tests/test_sweep_year.py): devices switched off (no check-in until back)
    # and devices whose rotation fails on the device until they recover; Intune ids.
    offline: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)

    def behaviour(self, device_id: str) -> Behaviour:
        digest = hashlib.sha256(f"{self.seed}:{device_id}".encode()).digest()
        rng = random.Random(digest)
        cfg = self.config
        roll = rng.random()
        never = roll < cfg.never_share
        outcome = "rotate"
        error = None
        roll = rng.random()
        if roll < cfg.fail_share:
            outcome, error = "fail", rng.choice(FAILURE_CODES)
        elif roll < cfg.fail_share + cfg.not_supported_share:
            outcome = "not_supported"
        roll = rng.random()
        initial = rng.randint(1, 3)
        if roll < cfg.ceiling_share:
            initial = KEY_LIMIT
        elif roll < cfg.ceiling_share + cfg.near_ceiling_share:
            initial = 192
        volumes = (
            (OS_VOLUME, FIXED_VOLUME) if rng.random() < cfg.fixed_drive_share else (OS_VOLUME,)
        )
        delay = None if never else rng.expovariate(1 / cfg.checkin_mean_s)
        return Behaviour(delay, outcome, error, volumes, initial)

    def device_keys(self, device: dict[str, Any]) -> list[dict[str, Any]]:
        """Keys escrowed for the device's Entra id (created on first sight, all in the past)."""
        entra = str(device.get("azureADDeviceId", "")).lower()
        if entra not in self.keys and self.initial_keys is not None:
            self.keys[entra] = self.initial_keys(device)
        if entra not in self.keys:
            behaviour = self.behaviour(device["id"])
            base = datetime(2025, 1, 1, tzinfo=UTC)
            self.keys[entra] = [
                _key(entra, OS_VOLUME if i % 2 == 0 else FIXED_VOLUME, base + timedelta(hours=i))
                for i in range(behaviour.initial_keys)
            ]
        return self.keys[entra]

    def requested(self, device: dict[str, Any]) -> None:
        """A rotate was accepted (204): the device will act on it at its next check-in."""
        if device["id"] not in self.pending:
            self.pending[device["id"]] = _Pending(self.monotonic(), self.clock.iso(ms=True))

    def advance(self, fleet: FleetWriter, device: dict[str, Any]) -> bool:
        """Play the device's check-in if it is due; update its action result and keys."""
        pending = self.pending.get(device["id"])
        if pending is None:
            return False
        behaviour = self.behaviour(device["id"])
        after = behaviour.checkin_after_s
        if after is None or device["id"] in self.offline:
            return False
        if device["id"] in self.failing:
            behaviour = Behaviour(after, "fail", FAILURE_CODES[0], behaviour.volumes, 0)
        due = pending.requested_real + after / self.time_scale
        if self.monotonic() < due:
            return False
        del self.pending[device["id"]]
        now = self.clock.now()
        fleet.set_property(device["id"], "lastSyncDateTime", _iso(now))
        keys = self.device_keys(device)
        result: dict[str, Any] = {
            "@odata.type": ROTATE_RESULT_TYPE,
            "actionName": "rotateBitLockerKeys",
            "startDateTime": pending.requested_iso,
            "lastUpdatedDateTime": _iso(now),
            "errorCode": 0,
        }
        if behaviour.outcome == "fail":
            result.update(actionState="failed", errorCode=behaviour.error_code)
        elif behaviour.outcome == "not_supported":
            result.update(actionState="notSupported")
        else:
            result["actionState"] = "done"
            # Rotated on the device; escrow fails silently once Entra holds 200 keys.
            for volume in behaviour.volumes:
                if len(keys) < KEY_LIMIT:
                    keys.append(_key(str(device["azureADDeviceId"]).lower(), volume, now))
        fleet.record_action(device["id"], result)
        return True

    def truth(self, device: dict[str, Any]) -> str:
        """The verification status a correct verifier reports, given what has happened so far."""
        if device["id"] in self.pending:
            return "pending"  # not checked in yet (or never will)
        behaviour = self.behaviour(device["id"])
        if behaviour.outcome == "fail":
            return "failed"
        if behaviour.outcome == "not_supported":
            return "not_supported"
        return "done_no_new_key" if behaviour.initial_keys >= KEY_LIMIT else "verified"


def stale_result(seed: int, device_id: str, now: datetime) -> dict[str, Any]:
    """A months-old failed rotate result, as Intune keeps one per action name (seeded)."""
    rng = random.Random(f"{seed}:stale:{device_id.lower()}")
    started = now - timedelta(days=rng.uniform(60, 240), seconds=rng.uniform(0, 86400))
    return {
        "@odata.type": ROTATE_RESULT_TYPE,
        "actionName": "rotateBitLockerKeys",
        "actionState": "failed",
        "startDateTime": _iso(started),
        "lastUpdatedDateTime": _iso(started + timedelta(minutes=rng.uniform(5, 600))),
        "errorCode": rng.choice(STALE_CODES),
    }


def has_stale_result(seed: int, share: float, device_id: str) -> bool:
    return share > 0 and device_fraction(seed, "stale", device_id) < share


def _iso(when: datetime) -> str:
    return iso(when, ms=True)


def _key(entra: str, volume: str, created: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "createdDateTime": _iso(created),
        "deviceId": entra,
        "volumeType": volume,
    }
