"""A sweep's evidence for people: `sweep.xlsx` (summary, key-age chart, trend chart, exceptions)
and `summary.md`, the one page an auditor reads. Both are rendered from sweep.json's document.

openpyxl, not the streaming writer (report/xlsx.py): four small sheets and two native charts,
which the streaming writer does not draw; the exceptions sheet is the only long one (a row per
non-compliant device), well within what openpyxl writes in a second or two.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batch_rotate.present import plural
from batch_rotate.report.cells import neutralise
from batch_rotate.sweep_posture import Posture, Why
from batch_rotate.textsafe import safe_text

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")
EXAMPLES_PER_REASON = 3
WHY_WORDS = {
    Why.INELIGIBLE: "ineligible (not joined, Home edition, old build, not Intune MDM)",
    Why.CLOUD_PC: "Windows 365 Cloud PC (no BitLocker)",
    Why.NOT_SUPPORTED: "the device cannot rotate keys",
    Why.KEY_CEILING: "key ceiling (200 keys in Entra ID)",
    Why.OFFLINE: "offline (no check-in for 30+ days)",
    Why.NO_KEY_ESCROWED: "no key escrowed (backup policy missing?)",
    Why.PENDING: "pending: queued, not yet checked in",
    Why.DEVICE_FAILED: "the rotation failed on the device",
    Why.NO_NEW_KEY: "done on the device, no new key in Entra ID",
    Why.SEND_FAILED: "the request failed or was not sent",
    Why.KEY_UNREADABLE: "recovery keys could not be read",
}


def write_evidence(sweep_dir: Path, doc: Mapping[str, Any], p: Posture) -> None:
    """sweep.xlsx and summary.md beside sweep.json (written first, by the sweep)."""
    _workbook(sweep_dir / "sweep.xlsx", doc, p)
    partial = sweep_dir / "summary.md.partial"
    partial.write_text(summary_markdown(doc, p), encoding="utf-8")
    partial.replace(sweep_dir / "summary.md")


def _md(text: object) -> str:
    """Text from outside, inert in Markdown: no control character, no markup, no HTML."""
    shown = safe_text(str(text)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", shown)


def _pct(share: float) -> str:
    return f"{share * 100:.1f} %"


def _bar(share: float, width: int = 20) -> str:
    filled = round(share * width)
    return "█" * filled + "░" * (width - filled)


def summary_markdown(doc: Mapping[str, Any], p: Posture) -> str:
    """The auditor's page: policy, tenant, dates, before/after, exceptions, trend, who, runs."""
    policy = doc["policy"]
    prev = doc.get("previous_sweep") or {}
    runs = doc.get("runs", {})
    rotation = [Path(r).name for r in runs.get("rotation") or []]
    verified = [Path(r).name for r in runs.get("verified") or []]
    lines = [
        f"# BitLocker key rotation sweep {_md(doc['sweep_id'])}",
        "",
        f"**Policy** {_md(policy.get('name') or policy['id'])} (id `{policy['id']}`): every "
        f"targeted device holds a recovery key younger than "
        f"**{policy['keys_older_than_days']:g} days**; selectors: "
        f"{_md(policy['description'])}.",
        "",
        "| | |",
        "|---|---|",
        f"| Tenant | `{_md(policy['tenant_id'])}` |",
        f"| Tenant time of the key read | {_md(doc.get('tenant_time') or '')} |",
        f"| Started / ended (UTC) | {_md(doc['started_at'])} / {_md(doc.get('ended_at') or '')} |",
        f"| Run by | {_md(doc['machine_user'])}, sign-in {_md(doc['credential'])}, app "
        f"`{_md(doc['client_id'] or '-')}` |",
        f"| Tool | batch-rotate {_md(doc['tool_version'])} |",
        f"| Command | `{_md(doc['command_line'])}` |",
        f"| Previous sweep | {_md(prev.get('sweep_id') or 'none (first sweep)')} |",
        f"| Rotation run | {_md(', '.join(rotation) or 'none (nothing to send)')} |",
        f"| Earlier runs verified | {_md(', '.join(verified) or 'none')} |",
        f"| State | {_md(doc.get('state') or '')}"
        + (
            " (stopped before the end: run the sweep again to finish)"
            if doc.get("state") == "interrupted"
            else ""
        )
        + " |",
        f"| Exit code | {doc.get('exit_code')} |",
        "",
        "## Before and after",
        "",
        "A rotation counts only once its new key is escrowed in Entra ID (verified).",
        "",
        "| targeted devices | compliant before | compliant after |",
        "|---:|---:|---:|",
        f"| {p.population} | {p.compliant_before} ({_pct(p.share(p.compliant_before))}) | "
        f"{p.compliant_after} ({_pct(p.share(p.compliant_after))}) |",
        "",
        "Key age (newest key per device): "
        + ", ".join(f"{name} {count}" for name, count in p.ages_before.items() if count)
        + " before; "
        + ", ".join(f"{name} {count}" for name, count in p.ages_after.items() if count)
        + " after.",
        "",
        "## Devices not compliant, and why",
        "",
    ]
    lines += _exception_lines(p)
    lines += ["", "## Trend over this policy's sweeps", ""]
    lines += ["| sweep | tenant time | compliant after | |", "|---|---|---:|---|"]
    for point in doc.get("trend", []):
        share = float(point["share_after"])
        lines.append(
            f"| {_md(point['sweep_id'])} | {_md(point['tenant_time'])} | "
            f"{point['compliant_after']} / {point['population']} ({_pct(share)}) | {_bar(share)} |"
        )
    lines += [
        "",
        "Evidence: sweep.json (schema batch_rotate/schemas/sweep.schema.json), sweep.xlsx, and "
        "each run's report.xlsx and journal.",
        "",
    ]
    return "\n".join(lines)


def _exception_lines(p: Posture) -> list[str]:
    if not p.exceptions:
        return ["None: every targeted device is compliant."]
    out = ["| reason | devices | examples |", "|---|---:|---|"]
    by: dict[Why, list[str]] = {}
    for e in p.exceptions:
        by.setdefault(e.why, []).append(e.device.name or e.device.id)
    for why, names in sorted(by.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(_md(n) for n in names[:EXAMPLES_PER_REASON])
        more = " …" if len(names) > EXAMPLES_PER_REASON else ""
        out.append(f"| {_md(WHY_WORDS[why])} | {len(names)} | {shown}{more} |")
    out += ["", f"All {plural(len(p.exceptions), 'device')} with details: sweep.xlsx, Exceptions."]
    return out


def _workbook(path: Path, doc: Mapping[str, Any], p: Posture) -> None:
    """Write-only (streamed rows): the Exceptions sheet may hold tens of thousands of devices."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.styles import Font

    bold = Font(bold=True)
    book = Workbook(write_only=True)

    def strong(sheet: Any, value: object) -> Any:
        cell = WriteOnlyCell(sheet, _cell(value))
        cell.font = bold
        return cell

    def header(sheet: Any, names: Sequence[str]) -> None:
        sheet.append([strong(sheet, name) for name in names])

    summary = book.create_sheet("Summary")
    summary.column_dimensions["A"].width = 28
    summary.column_dimensions["B"].width = 60
    policy = doc["policy"]
    facts: Sequence[tuple[str, object]] = (
        ("Sweep", doc["sweep_id"]),
        ("Policy", policy.get("name") or policy["id"]),
        ("Policy id", policy["id"]),
        ("Key age limit (days)", policy["keys_older_than_days"]),
        ("Selectors", policy["description"]),
        ("Tenant", policy["tenant_id"]),
        ("Tenant time", doc.get("tenant_time") or ""),
        ("Started (UTC)", doc["started_at"]),
        ("Ended (UTC)", doc.get("ended_at") or ""),
        ("Run by", f"{doc['machine_user']} ({doc['credential']})"),
        ("Tool version", doc["tool_version"]),
        ("Previous sweep", (doc.get("previous_sweep") or {}).get("sweep_id") or ""),
        ("Rotation run", ", ".join(Path(r).name for r in doc["runs"]["rotation"])),
        ("Exit code", doc.get("exit_code")),
        ("Targeted devices", p.population),
        ("Compliant before", p.compliant_before),
        ("Share before", p.share(p.compliant_before)),
        ("Compliant after (verified)", p.compliant_after),
        ("Share after", p.share(p.compliant_after)),
    )
    for label, value in facts:
        cell = WriteOnlyCell(summary, _cell(value))
        if label.startswith("Share"):
            cell.number_format = "0.0%"
        summary.append([strong(summary, label), cell])

    ages = book.create_sheet("Key ages")
    header(ages, ["Newest key age", "Before", "After"])
    for name in p.ages_before:
        ages.append([name, p.ages_before[name], p.ages_after[name]])
    last = len(p.ages_before) + 1
    chart = BarChart()
    chart.title, chart.y_axis.title = "Newest recovery key age", "devices"
    chart.add_data(
        Reference(ages, min_col=2, max_col=3, min_row=1, max_row=last), titles_from_data=True
    )
    chart.set_categories(Reference(ages, min_col=1, min_row=2, max_row=last))
    ages.add_chart(chart, "E2")

    trend = book.create_sheet("Trend")
    header(trend, ["Sweep", "Tenant time", "Targeted", "Share before", "Share after", "Rotated"])
    points = doc.get("trend", [])
    for point in points:
        trend.append(
            [
                _cell(point["sweep_id"]),
                _cell(point["tenant_time"]),
                point["population"],
                point["share_before"],
                point["share_after"],
                point["rotated"],
            ]
        )
    line = LineChart()
    line.title, line.y_axis.title = "Share of devices with a compliant key", "share"
    line.y_axis.scaling.min, line.y_axis.scaling.max = 0, 1
    last = len(points) + 1
    line.add_data(
        Reference(trend, min_col=4, max_col=5, min_row=1, max_row=last), titles_from_data=True
    )
    line.set_categories(Reference(trend, min_col=2, min_row=2, max_row=last))
    trend.add_chart(line, "H2")

    sheet = book.create_sheet("Exceptions")
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:D{len(p.exceptions) + 1}"
    header(sheet, ["Intune device id", "Device name", "Reason", "Detail"])
    for e in p.exceptions:
        sheet.append([_cell(e.device.id), _cell(e.device.name), e.why.value, _cell(e.detail)])
    partial = path.with_name(path.name + ".partial")
    book.save(partial)
    partial.replace(path)


def _cell(value: object) -> object:
    """Numbers stay numbers; text is neutralised (never a formula, whoever named the device)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return neutralise("" if value is None else str(value))
