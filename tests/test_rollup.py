"""The campaign roll-up: per-tenant and total counts, pre-flight lines, the Devices table with
its tenant columns, the chart, hostile tenant names, and the CSV files (issue 21)."""

from __future__ import annotations

import csv
import dataclasses
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from batch_rotate.campaign_model import TenantEntry, TenantOutcome
from batch_rotate.eligibility import ineligibility
from batch_rotate.errors import BatchRotateError
from batch_rotate.journal import Journal
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.models import Device, DeviceRef, IdKind, Outcome, Status, Verdict, Verification
from batch_rotate.report import COLUMNS
from batch_rotate.report.rollup import (
    SUMMARY_COLUMNS,
    rollup_document,
    rollup_summary,
    write_rollup,
)
from batch_rotate.runs import render

from .schema_check import problems, schema

# One tenant's rows, by kind: `queued[:verified|:devfail]`, `failed:<code>:<http>`, `mac`
# (not Windows: ineligible), `missing` (not in the inventory: not_found), `pending` (not sent).
CONTOSO = [
    "queued:verified",
    "queued:verified",
    "queued",
    "queued:devfail",
    "failed:TooManyRequests:429",
    "failed:TooManyRequests:429",
    "failed:Forbidden:403",
    "mac",
    "missing",
    "missing",
]
FABRIKAM = ["queued:verified", "queued", "mac", "pending"]


def _device(row: int, kind: str) -> Device:
    return Device(
        id=f"dev{row}",
        name=f"LT-{row}",
        entra_device_id=f"e{row}",
        os="macOS" if kind == "mac" else "Windows",
        os_version="10.0.22631.1",
        join_type="azureADJoined",
        management_agent="mdm",
    )


def _run(run_dir: Path, kinds: list[str], tenant_id: str) -> Path:
    """A finished run's journal with these rows, made with the Journal API (no server)."""
    journal = Journal.create(run_dir, {"tenant_id": tenant_id, "dry_run": "False"})
    try:
        rows = list(enumerate(kinds, start=2))
        journal.add_refs(DeviceRef(r, f"dev{r}", IdKind.INTUNE_ID, f"dev{r}") for r, _ in rows)
        devices = [_device(r, k) for r, k in rows if k != "missing"]
        journal.add_inventory((d, ineligibility(d) or "", "") for d in devices)
        journal.resolve_rows(
            {k: MatchTexts(f"not_found: {k}", ("ambiguous: ", " (", ")")) for k in IdKind},
            duplicate=("duplicate: same device as row ", ""),
        )
        sent = [(r, k) for r, k in rows if k.startswith(("queued", "failed"))]
        journal.mark_in_flight([(r, f"c{r}") for r, _ in sent])
        outcomes = []
        for r, kind in sent:
            if kind.startswith("failed"):
                _, code, http = kind.split(":")
                outcomes.append(Outcome(r, Status.FAILED, int(http), code, reason=f"HTTP {http}"))
            else:
                outcomes.append(Outcome(r, Status.QUEUED, 204))
        journal.record(outcomes)
        verdicts = [
            Verdict(r, Verification.VERIFIED, "new key", "done", "", "2026-11-27T02:00:00Z", "", 2)
            if kind.endswith("verified")
            else Verdict(r, Verification.FAILED, "TPM", "failed", "0x8031004A", "", "", 1)
            for r, kind in sent
            if kind.endswith(("verified", "devfail"))
        ]
        journal.record_verification(verdicts)
    finally:
        journal.close()
    return run_dir


def _outcome(name: str, tenant: str, **fields: Any) -> TenantOutcome:
    entry = TenantEntry(tenant=tenant, name=name, line=1)
    return TenantOutcome(entry=entry, tenant_id=fields.pop("tenant_id", ""), **fields)


def _campaign(tmp_path: Path, contoso_name: str = "Contoso") -> list[TenantOutcome]:
    folder = tmp_path / "campaign"
    return [
        _outcome(
            contoso_name,
            "contoso.example",
            tenant_id="11111111-1111-4111-8111-111111111111",
            sign_in="client secret",
            run_dir=_run(folder / "contoso", CONTOSO, "11111111-1111-4111-8111-111111111111"),
            duration_s=61.25,
            budget_use=0.42,
            exit_code=1,
        ),
        _outcome(
            "Fabrikam",
            "fabrikam.example",
            tenant_id="22222222-2222-4222-8222-222222222222",
            sign_in="certificate",
            run_dir=_run(folder / "fabrikam", FABRIKAM, "22222222-2222-4222-8222-222222222222"),
            duration_s=5.0,
        ),
        _outcome(
            "Northwind",
            "northwind.example",
            sign_in="client secret",
            preflight="AADSTS65001: no admin consent for the app",
            fix="grant admin consent in Northwind, then run the campaign again",
            exit_code=3,
        ),
    ]


def _summary(path: Path) -> list[dict[str, Any]]:
    """The Summary sheet's lines (tenants, then totals) by header."""
    sheet = openpyxl.load_workbook(path)["Summary"]
    rows = list(sheet.iter_rows(values_only=True))
    headers = rows[0]
    lines = []
    for row in rows[1:]:
        if not any(v is not None for v in row):
            break  # the blank row before the chart's counts
        lines.append(dict(zip(headers, row, strict=True)))
    return lines


def test_summary_counts_totals_and_the_preflight_failure(tmp_path: Path) -> None:
    outcomes = _campaign(tmp_path)
    paths = write_rollup(tmp_path / "campaign", outcomes)
    book = openpyxl.load_workbook(paths.xlsx)
    assert book.sheetnames == ["Summary", "Devices"]  # the summary is the tab it opens on
    contoso, fabrikam, northwind, total = _summary(paths.xlsx)
    assert [h for h, _ in SUMMARY_COLUMNS] == list(contoso)
    assert contoso["Tenant"] == "Contoso"
    assert contoso["Tenant ID"] == "11111111-1111-4111-8111-111111111111"
    assert (contoso["Sign-in"], contoso["Pre-flight"]) == ("client secret", "ok")
    assert contoso["Rows read"] == 10
    assert (contoso["Ineligible"], contoso["Not found"], contoso["Ambiguous"]) == (1, 2, 0)
    assert (contoso["Sent"], contoso["Queued"], contoso["Failed"]) == (7, 4, 3)
    assert contoso["Failed by error"] == "TooManyRequests 2; Forbidden 1"
    assert (contoso["Verified"], contoso["Pending verification"], contoso["Not verified"]) == (
        2,
        1,
        1,
    )
    assert contoso["Device errors (verify)"] == "0x8031004A 1"
    assert (contoso["Budget use (%)"], contoso["Duration (s)"]) == (42, 61.2)
    assert contoso["Exit code"] == 1
    assert contoso["Run folder"] == "contoso"
    assert (fabrikam["Rows read"], fabrikam["Queued"], fabrikam["Not sent"]) == (4, 2, 1)
    assert (fabrikam["Ineligible"], fabrikam["Failed"], fabrikam["Failed by error"]) == (1, 0, None)
    assert fabrikam["Budget use (%)"] is None  # unknown, not zero
    # pre-flight failed: its reason and fix, zero counts, no run folder
    assert northwind["Pre-flight"] == "AADSTS65001: no admin consent for the app"
    assert northwind["Fix"] == "grant admin consent in Northwind, then run the campaign again"
    assert northwind["Tenant ID"] == "northwind.example"  # as written: it never signed in
    counted = [h for h, _ in SUMMARY_COLUMNS[5:21] if "error" not in h]
    assert all(northwind[h] == 0 for h in counted), northwind
    assert northwind["Run folder"] is None and northwind["Exit code"] == 3
    # totals: sums of the tenants' lines
    assert total["Tenant"] == "Total (3 tenants)" and total["Pre-flight"] == "2 ok, 1 failed"
    for header in counted:
        assert total[header] == contoso[header] + fabrikam[header], header
    assert total["Failed by error"] == "TooManyRequests 2; Forbidden 1"
    assert total["Rows read"] == 14 and total["Exit code"] == 3
    # the same lines, without a workbook, for the console and --json
    lines = rollup_summary(outcomes, campaign_dir=tmp_path / "campaign")
    assert [(x.tenant, x.rows, x.sent, x.verified) for x in lines] == [
        ("Contoso", 10, 7, 2),
        ("Fabrikam", 4, 2, 1),
        ("Northwind", 0, 0, 0),
        ("Total (3 tenants)", 14, 9, 3),
    ]


def test_json_document_names_the_tenant_on_every_record(tmp_path: Path) -> None:
    outcomes = _campaign(tmp_path)
    campaign_dir = tmp_path / "campaign"
    paths = write_rollup(campaign_dir, outcomes)
    doc = rollup_document(outcomes, campaign_dir=campaign_dir, paths=paths)
    assert doc == rollup_document(outcomes, campaign_dir=campaign_dir) | {"reports": doc["reports"]}
    spec = schema("rollup.schema.json")
    line = spec["$defs"]["line"]
    spec["properties"]["tenants"]["items"] = spec["properties"]["totals"] = line  # local $refs
    assert problems(doc, spec) == []
    assert [(t["tenant"], t["tenant_id"]) for t in doc["tenants"]] == [
        ("Contoso", "11111111-1111-4111-8111-111111111111"),
        ("Fabrikam", "22222222-2222-4222-8222-222222222222"),
        ("Northwind", "northwind.example"),
    ]
    contoso = doc["tenants"][0]
    assert contoso["failed_by_error"] == {"TooManyRequests": 2, "Forbidden": 1}
    assert contoso["not_eligible"]["not_found"] == 2 and contoso["budget_use"] == 0.42
    assert doc["tenants"][2]["preflight"].startswith("AADSTS65001")
    assert doc["tenants"][2]["run_dir"] is None and doc["totals"]["sent"] == 9
    assert doc["reports"]["xlsx"] == str(paths.xlsx)


def test_devices_table_covers_every_row_with_its_tenant_and_the_chart_reads_the_counts(
    tmp_path: Path,
) -> None:
    paths = write_rollup(tmp_path / "campaign", _campaign(tmp_path))
    book = openpyxl.load_workbook(paths.xlsx)
    devices = book["Devices"]
    header = [c.value for c in devices[1]]
    assert header == ["Tenant", "Tenant ID", *(h for _, h in COLUMNS)]
    table = devices.tables["Devices"]
    last = f"{openpyxl.utils.get_column_letter(len(header))}{1 + len(CONTOSO) + len(FABRIKAM)}"
    assert table.ref == f"A1:{last}" and devices.max_row == 15
    assert devices.freeze_panes == "A2"
    tenants = [r[0] for r in devices.iter_rows(min_row=2, values_only=True)]
    assert tenants == ["Contoso"] * len(CONTOSO) + ["Fabrikam"] * len(FABRIKAM)
    # dates are real date cells, as in the per-run report
    verified_at = header.index("New key escrowed at (UTC)") + 1
    assert devices.cell(2, verified_at).is_date
    summary = book["Summary"]
    assert summary.tables["Tenants"].ref == "A1:Z4"  # three tenants; totals below the table
    [chart] = summary._charts
    assert chart.grouping == "stacked" and len(chart.series) == 5
    [first, *_] = chart.series
    assert first.cat.strRef.f == "'Summary'!$A$8:$A$10"
    assert first.val.numRef.f == "'Summary'!$B$8:$B$10"
    assert [c.value for c in summary[7][:6]] == [
        "Devices by outcome",
        "Verified",
        "Queued, not verified",
        "Failed or uncertain",
        "Not sent",
        "Not eligible",
    ]
    # each tenant's bar adds up to its rows
    bars = summary.iter_rows(min_row=8, max_row=10, values_only=True)
    assert [sum(row[1:6]) for row in bars] == [10, 4, 0]
    with zipfile.ZipFile(paths.xlsx) as package:
        names = set(package.namelist())
        types = package.read("[Content_Types].xml").decode()
        for name in names:
            ET.fromstring(package.read(name))  # noqa: S314 (our own output)
    assert {"xl/charts/chart1.xml", "xl/drawings/drawing1.xml"} <= names
    assert "xl/drawings/_rels/drawing1.xml.rels" in names
    assert "/xl/charts/chart1.xml" in types and "/xl/drawings/drawing1.xml" in types


HOSTILE = '=HYPERLINK("http://evil.example","x")\x07\u202e'


@pytest.mark.parametrize("name", [HOSTILE, "@SUM(A1)", "+1+1", "-2+3", "\tcmd"])
def test_hostile_tenant_names_are_inert_everywhere(tmp_path: Path, name: str) -> None:
    outcomes = _campaign(tmp_path, contoso_name=name)
    paths = write_rollup(tmp_path / "campaign", outcomes)
    book = openpyxl.load_workbook(paths.xlsx)
    shown = {
        book["Summary"]["A2"].value,
        book["Summary"]["A8"].value,  # the chart's category
        book["Devices"]["A2"].value,
    }
    assert len(shown) == 1
    [value] = shown
    assert value.startswith("'") and "\x07" not in value and "\u202e" not in value
    for sheet in book:
        for row in sheet.iter_rows():
            assert all(cell.data_type != "f" for cell in row)
    with paths.csv.open(encoding="utf-8-sig", newline="") as handle:
        assert next(csv.reader(handle)) and next(csv.reader(handle))[0] == value
    with paths.summary_csv.open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle))[1][0] == value


def test_csv_round_trips_each_tenants_report_with_its_tenant_in_front(tmp_path: Path) -> None:
    """rollup.csv's rows of a tenant are that tenant's own report.csv rows, tenant first."""
    outcomes = _campaign(tmp_path)
    paths = write_rollup(tmp_path / "campaign", outcomes)
    raw = paths.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    with paths.csv.open(encoding="utf-8-sig", newline="") as handle:
        rolled = list(csv.reader(handle))
    assert rolled[0] == ["Tenant", "Tenant ID", *(h for _, h in COLUMNS)]
    for outcome in outcomes[:2]:
        assert outcome.run_dir is not None
        report_csv = render(outcome.run_dir)[0].csv
        with report_csv.open(encoding="utf-8-sig", newline="") as handle:
            own = list(csv.reader(handle))[1:]
        mine = [r[2:] for r in rolled[1:] if r[0] == outcome.entry.name]
        assert mine == own
        assert {r[1] for r in rolled[1:] if r[0] == outcome.entry.name} == {outcome.tenant_id}
    with paths.summary_csv.open(encoding="utf-8-sig", newline="") as handle:
        summary = list(csv.reader(handle))
    assert summary[0] == [h for h, _ in SUMMARY_COLUMNS]
    assert [r[0] for r in summary[1:]] == ["Contoso", "Fabrikam", "Northwind", "Total (3 tenants)"]
    assert summary[1][SUMMARY_COLUMNS.index(("Failed by error", 36))] == (
        "TooManyRequests 2; Forbidden 1"
    )


def test_devices_split_into_more_sheets_at_the_row_limit(tmp_path: Path) -> None:
    paths = write_rollup(tmp_path / "campaign", _campaign(tmp_path), max_sheet_rows=9)
    book = openpyxl.load_workbook(paths.xlsx)
    assert book.sheetnames == ["Summary", "Devices", "Devices (2)"]
    assert book["Devices"].tables["Devices"].ref == "A1:AB9"
    assert book["Devices (2)"].tables["Devices2"].ref == "A1:AB7"
    assert book["Devices (2)"]["A7"].value == "Fabrikam"


def test_an_unreadable_journal_is_a_note_and_the_other_tenants_are_there(
    tmp_path: Path,
) -> None:
    outcomes = _campaign(tmp_path)
    gone = tmp_path / "campaign" / "gone"
    gone.mkdir()
    outcomes.append(_outcome("Gone", "gone.example", sign_in="device code", run_dir=gone))
    paths = write_rollup(tmp_path / "campaign", outcomes)
    lines = _summary(paths.xlsx)
    assert [line["Tenant"] for line in lines] == [
        "Contoso",
        "Fabrikam",
        "Northwind",
        "Gone",
        "Total (4 tenants)",
    ]
    assert "journal unreadable, 0 rows read" in lines[3]["Notes"] and lines[3]["Rows read"] == 0
    assert lines[4]["Rows read"] == 14
    assert not [p.name for p in paths.xlsx.parent.iterdir() if p.name.startswith(".")]


def test_a_locked_rollup_is_a_clear_error_and_the_old_files_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batch_rotate.report.files as files

    campaign_dir = tmp_path / "campaign"
    outcomes = _campaign(tmp_path)
    paths = write_rollup(campaign_dir, outcomes)
    before = {p: p.read_bytes() for p in (paths.xlsx, paths.csv, paths.summary_csv)}

    replace = files.os.replace

    def locked(source: object, target: object) -> None:  # Excel holds rollup.xlsx on Windows
        if str(target).endswith(".xlsx"):
            raise PermissionError(13, "Permission denied")
        replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(files.os, "replace", locked)
    later = [dataclasses.replace(outcomes[0], duration_s=99.0), *outcomes[1:]]
    with pytest.raises(BatchRotateError, match=r"Close rollup\.xlsx if it is open"):
        write_rollup(campaign_dir, later)  # its Summary differs: none of it may land
    assert {p: p.read_bytes() for p in before} == before
    assert not [p.name for p in campaign_dir.iterdir() if p.name.startswith(".")]


def test_no_tenants_is_an_empty_rollup_not_a_crash(tmp_path: Path) -> None:
    paths = write_rollup(tmp_path / "campaign", [])
    book = openpyxl.load_workbook(paths.xlsx)
    assert book["Summary"].tables["Tenants"].ref == "A1:Z2"
    assert book["Summary"]["A3"].value == "Total (0 tenants)"
    assert book["Devices"].max_row <= 2
