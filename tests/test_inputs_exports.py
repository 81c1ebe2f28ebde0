"""Real export formats (fixtures made from their public header rows) and how the kind is decided."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_rotate.errors import InputError
from batch_rotate.inputs import KNOWN_HEADERS, read_device_list
from batch_rotate.models import IdKind

DATA = Path(__file__).parent / "data" / "inputs"
GUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
GUID2 = "9a1b2c3d-0000-4000-8000-000000000001"


def _csv(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "column", "kind", "rows", "first_key"),
    [
        ("intune-all-devices.csv", "Device ID", IdKind.INTUNE_ID, [2, 3, 4], None),
        ("intune-export-old-headers.csv", "Device ID", IdKind.INTUNE_ID, [2], GUID),
        (
            "entra-devices-download.csv",
            "deviceId",
            IdKind.ENTRA_DEVICE_ID,
            [2, 3],
            "8f14e45f-ceea-467f-a8f5-0d1c2b3a4e5f",
        ),
        (
            "graph-powershell-managed-devices.csv",
            "Id",
            IdKind.INTUNE_ID,
            [2, 3],
            "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
        ),
        (
            "windows-powershell-51-export-csv.csv",
            "Id",
            IdKind.INTUNE_ID,
            [3, 4],
            "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
        ),
        (
            "log-analytics-intunedevices.csv",
            "DeviceId",
            IdKind.INTUNE_ID,
            [2, 3],
            "a5b6c7d8-e9fa-4b0c-8d2e-4f5a6b7c8d9e",
        ),
        ("autopilot-devices.csv", "Device Serial Number", IdKind.SERIAL_NUMBER, [2, 3], "pf3xyz01"),
        ("servicenow-computers.csv", "serial_number", IdKind.SERIAL_NUMBER, [2, 3], "cnd1234abc"),
        ("active-directory-computers.csv", "CN", IdKind.DEVICE_NAME, [3, 4], "lt-ad-1"),
    ],
)
def test_every_real_export_is_read_with_its_identifier_column(
    name: str, column: str, kind: IdKind, rows: list[int], first_key: str | None
) -> None:
    devices = read_device_list(DATA / name)
    assert (devices.column, devices.kind, devices.kind_candidates) == (column, kind, (kind,))
    assert not devices.ambiguous and devices.kind_evidence
    refs = list(devices.refs)
    assert [r.row for r in refs] == rows
    assert all(r.error is None for r in refs)
    if first_key is not None:
        assert refs[0].key == first_key


def test_powershell_type_line_is_skipped_not_taken_for_the_header() -> None:
    devices = read_device_list(DATA / "windows-powershell-51-export-csv.csv")
    assert devices.header_row == 2
    assert devices.columns_found == ("Id", "DeviceName", "SerialNumber", "AzureAdDeviceId")
    entra = read_device_list(
        DATA / "windows-powershell-51-export-csv.csv", id_column="azureaddeviceid"
    )
    assert entra.kind == IdKind.ENTRA_DEVICE_ID
    assert entra.refs[1].key == "f4a5b6c7-d8e9-4fa0-b1c2-3d4e5f6a7b8c"


def test_log_analytics_deviceid_is_intune_because_referenceid_is_entra() -> None:
    devices = read_device_list(DATA / "log-analytics-intunedevices.csv")
    assert "'ReferenceId' beside it holds the Microsoft Entra device ID" in devices.kind_evidence
    entra = read_device_list(
        DATA / "log-analytics-intunedevices.csv", id_kind=IdKind.ENTRA_DEVICE_ID
    )
    assert (entra.column, entra.refs[0].key) == (
        "ReferenceId",
        "b6c7d8e9-fa0b-4c1d-9e3f-5a6b7c8d9e0f",
    )


def test_entra_export_deviceid_is_entra_because_objectid_is_beside_it() -> None:
    devices = read_device_list(DATA / "entra-devices-download.csv")
    assert "'objectId' beside it" in devices.kind_evidence
    assert "Entra" in devices.kind_evidence


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("DeviceId,AzureAdDeviceId", IdKind.INTUNE_ID),
        ("DeviceId,Azure AD Device ID", IdKind.INTUNE_ID),
        ("DeviceId,DeviceName,LastSyncDateTime", IdKind.INTUNE_ID),
        ("DeviceId,objectId", IdKind.ENTRA_DEVICE_ID),
        ("Id,DeviceId,DisplayName", IdKind.ENTRA_DEVICE_ID),  # Get-MgDevice
        ("DeviceId,DisplayName,trustType", IdKind.ENTRA_DEVICE_ID),
    ],
)
def test_a_deviceid_column_is_decided_by_the_columns_beside_it(
    tmp_path: Path, header: str, kind: IdKind
) -> None:
    cells = [
        GUID if i == 0 else (GUID2 if "Id" in name else "x")
        for i, name in enumerate(header.split(","))
    ]
    path = _csv(tmp_path, f"{header}\n{','.join(cells)}\n")
    devices = read_device_list(path, id_column="DeviceId")
    assert (devices.kind, devices.kind_candidates) == (kind, (kind,))
    assert devices.refs[0].kind == kind


@pytest.mark.parametrize(
    "header", ["DeviceId", "DeviceId,DeviceName", "DeviceId,AzureAdDeviceId,objectId"]
)
def test_a_lone_deviceid_is_left_to_graph_with_both_candidates(tmp_path: Path, header: str) -> None:
    width = header.count(",") + 1
    path = _csv(tmp_path, f"{header}\n{GUID}" + ",x" * (width - 1) + "\n")
    devices = read_device_list(path)
    assert devices.column == "DeviceId"
    assert devices.ambiguous
    assert set(devices.kind_candidates) == {IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID}
    assert "may hold Microsoft Entra device IDs" in devices.kind_evidence
    decided = devices.as_kind(IdKind.INTUNE_ID, "probe: 1 of 1 found by Intune id")
    assert (decided.kind, decided.kind_candidates, decided.ambiguous) == (
        IdKind.INTUNE_ID,
        (IdKind.INTUNE_ID,),
        False,
    )
    assert [(r.kind, r.key) for r in decided.refs] == [(IdKind.INTUNE_ID, GUID)]
    assert decided.kind_evidence == "probe: 1 of 1 found by Intune id"


def test_id_column_alone_infers_guids_but_leaves_their_kind_to_graph(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"Owner,Machine\nalice,{GUID}\nbob,{{{GUID2.upper()}}}\n")
    devices = read_device_list(path, id_column="machine")
    assert devices.column == "Machine" and devices.ambiguous
    assert "the values in 'Machine' are GUIDs" in devices.kind_evidence
    assert [r.key for r in devices.refs] == [GUID, GUID2]


def test_id_column_alone_with_names_or_serials_asks_for_the_kind(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"Owner,Asset\nalice,LT-1\nbob,{GUID}\n")
    with pytest.raises(InputError) as caught:
        read_device_list(path, id_column="Asset")
    message = str(caught.value)
    assert "d.csv: column 'Asset' is not a known identifier column" in message
    assert "--id-kind device_name or --id-kind serial_number" in message
    assert caught.value.exit_code == 2


def test_id_column_alone_with_a_known_header_takes_its_kind(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Device Serial Number,Group Tag\nPF1,Kiosk\n")
    devices = read_device_list(path, id_column="device serial number")
    assert (devices.kind, devices.ambiguous) == (IdKind.SERIAL_NUMBER, False)


def test_the_header_table_has_one_row_per_header_with_a_source() -> None:
    names = [h.text.casefold() for h in KNOWN_HEADERS]
    assert len(names) == len(set(names))
    assert all(h.source for h in KNOWN_HEADERS)
    for wanted in ("device serial number", "serial_number", "cn", "referenceid", "deviceid"):
        assert wanted in names


def test_an_entra_object_id_is_never_used(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"ObjectGUID,Owner\n{GUID},alice\n")
    with pytest.raises(InputError, match="no device identifier column"):
        read_device_list(path)
