"""Records that flow between stages: input refs, devices, targets, outcomes and report rows.

Frozen dataclasses (report rows: a named tuple) with explicit enums, so no stage passes loose
dicts to another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class IdKind(StrEnum):
    """What an input value identifies a device by."""

    INTUNE_ID = "intune_id"
    ENTRA_DEVICE_ID = "entra_device_id"
    DEVICE_NAME = "device_name"
    SERIAL_NUMBER = "serial_number"


class Status(StrEnum):
    """Final (or planned) status of one input row, as shown in the report."""

    QUEUED = "queued"  # Graph answered 204: the rotation waits for the device's next check-in
    FAILED = "failed"  # Graph refused it, or retries ran out
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous"
    DUPLICATE = "duplicate"
    INELIGIBLE = "ineligible"
    WOULD_ROTATE = "would_rotate"  # dry run / plan only
    NOT_SENT = "not_sent"  # run stopped (Ctrl-C, outage) before this device was sent
    UNCERTAIN = "uncertain"  # sent, but the answer was never recorded (interrupted mid-flight)
    RESOLVING = "resolving"  # journal-internal: read, not yet matched to a device
    PENDING = "pending"  # journal-internal: planned, not yet sent
    IN_FLIGHT = "in_flight"  # journal-internal: inside a batch that is on the wire


FINAL_STATUSES = frozenset(
    {
        Status.QUEUED,
        Status.FAILED,
        Status.INVALID_INPUT,
        Status.NOT_FOUND,
        Status.AMBIGUOUS,
        Status.DUPLICATE,
        Status.INELIGIBLE,
    }
)


class Verification(StrEnum):
    """What `verify` concluded about one queued rotation."""

    VERIFIED = "verified"  # a key escrowed after the request
    DONE_NO_NEW_KEY = "done_no_new_key"
    PENDING = "pending"  # not checked in yet, or still running
    FAILED = "failed"
    NOT_SUPPORTED = "not_supported"
    UNKNOWN = "unknown"  # done, but keys cannot be read

    @property
    def final(self) -> bool:
        """No later check can change it: stop polling this device."""
        return self is not Verification.PENDING


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """One input row: where it came from and what it names.

    `kind` is None and `error` is set when the value is unusable (becomes `invalid_input`).
    `key` is the normalised value used for matching (lower-case GUID, case-folded name).
    """

    row: int
    value: str
    kind: IdKind | None
    key: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Device:
    """An Intune managed device, reduced to the properties the job needs."""

    id: str
    name: str = ""
    serial_number: str = ""
    entra_device_id: str = ""
    os: str = ""
    os_version: str = ""
    join_type: str = ""
    user_principal_name: str = ""
    last_sync: str = ""
    management_agent: str = ""
    device_type: str = ""  # beta managedDevice.deviceType: "cloudPC" for a Windows 365 Cloud PC
    model: str = ""
    sku_family: str = ""  # beta managedDevice.skuFamily (free text, e.g. "Enterprise")
    sku_number: str = ""  # beta managedDevice.skuNumber: GetProductInfo's product type


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved, eligible device planned for rotation."""

    row: int
    device_id: str
    name: str
    entra_device_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer Graph gave to one rotate request (one attempt)."""

    row: int
    status: Status  # QUEUED, FAILED, or PENDING when it should be retried
    http_status: int | None = None
    error_code: str = ""
    message: str = ""
    request_id: str = ""
    client_request_id: str = ""
    reason: str = ""
    answered_at: str = ""  # the tenant's clock when it answered (its `Date` header)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A device's verification status, from `verify` to the journal."""

    row: int
    status: Verification
    detail: str
    action_state: str
    error_code: str
    new_key_at: str
    last_check_in: str
    key_count: int | None


class ReportRow(NamedTuple):
    """One line of the per-device report, rendered from the journal.

    A named tuple, not a frozen dataclass: a million-row report builds one or two per row, and
    a frozen dataclass's `__init__` (one `object.__setattr__` per field) cost 2.7 us against
    0.4 us (issue 23). Immutable all the same; `_replace` gives a changed copy."""

    row: int
    input_value: str
    id_kind: str
    intune_device_id: str
    device_name: str
    serial_number: str
    entra_device_id: str
    os: str
    status: str
    reason: str
    http_status: int | None
    error_code: str
    error_message: str
    request_id: str
    client_request_id: str
    attempts: int
    requested_at: str
    resent_after_interrupt: bool = False
    accepted_at: str = ""  # the tenant's clock at the 204
    confirmed_after_lost_answer: bool = False
    verification: str = ""  # verified, pending, failed, ... (after `verify`)
    verification_detail: str = ""
    action_state: str = ""
    action_error_code: str = ""
    new_key_at: str = ""
    last_check_in: str = ""
    key_count: int | None = None
    verified_at: str = ""
    flag: str = ""  # what the plan flagged on the device (co-managed), kept past its reason


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What the Summary sheet shows about a run."""

    run_id: str
    tenant_id: str
    client_id: str
    started_at: str
    ended_at: str
    input_file: str
    input_sha256: str
    counts: dict[str, int]
    details: dict[str, str]  # further labelled facts (options, machine user, command line)
    verification_counts: dict[str, int] = field(default_factory=dict)
