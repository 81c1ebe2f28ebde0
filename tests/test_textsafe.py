"""Issue 19 item 2: control and bidi characters from outside never reach a human channel raw.

Device names (and file names, Graph messages) with ESC/OSC sequences, C0/C1 controls, newlines
and bidi overrides are shown escaped (`\\x1b`, `\\n`, `\\u202e`) on the terminal, in the prompt,
the summary, log lines and run.log; JSON stays valid and decodes to the true value; the journal
keeps the true value.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import Result

from batch_rotate.cli import console as console_mod
from batch_rotate.cli import output as output_mod
from batch_rotate.graph.signin import DeviceCodeTokenProvider
from batch_rotate.runkit import ConfirmRequest, RunResult
from batch_rotate.sim import SimTenant
from batch_rotate.textsafe import SafeFormatter, is_unsafe, safe_json, safe_lines, safe_text

from .conftest import run_dirs, sim_flags
from .test_hostile_ids import _device
from .test_prompt import _run_on_tty

Cli = Callable[..., Result]
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
CONTROLS = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0)])) + "\u2028\u2029"
HOSTILE = "KIOSK\x1b]52;c;cHduZWQ=\x07-01\x1b[2J\r\n\u202eexe.txt\x9b31m\u2066"
NAMES = st.text(
    st.characters(codec="utf-8") | st.sampled_from([*BIDI, *CONTROLS, *"[]/\\:@#", "\ud800"]),
    min_size=1,
    max_size=24,
)


def _raw_unsafe(text: str) -> list[str]:
    """Unsafe characters a channel let through (its own line breaks aside)."""
    return [c for c in text if is_unsafe(c) and c != "\n"]


@contextlib.contextmanager
def _captured() -> Iterator[io.StringIO]:
    """The CLI's consoles, writing plain text into one buffer as on a pipe."""
    buffer = io.StringIO()
    plain = console_mod._Console(file=buffer, soft_wrap=True, color_system=None, width=10_000)
    with (
        mock.patch.object(console_mod, "err", plain),
        mock.patch.object(console_mod, "out", plain),
        mock.patch.object(output_mod, "err", plain),
    ):
        yield buffer


@settings(max_examples=200, deadline=None)
@given(name=NAMES)
def test_no_control_or_bidi_character_survives_a_human_channel(name: str) -> None:
    shown = safe_text(name)
    assert not _raw_unsafe(shown) and "\n" not in shown
    request = ConfirmRequest(
        "tenant", "https://graph", 3, [f"row 2: {name} (id)"], (f"held back: {name}",)
    )
    result = RunResult(
        Path("/tmp/run"),
        {"queued": 1},
        0,
        messages=[f"message {name}"],
        warnings=[f"warning {name}"],
        next_command=f"batch-rotate verify {name}",
    )
    record = logging.LogRecord(
        "batch_rotate", logging.DEBUG, __file__, 1, "row 2 %s", (name,), None
    )
    with _captured() as buffer:
        for line in console_mod.prompt_lines(request):
            console_mod.err.print(line, highlight=False)
        console_mod.print_summary(result, console_mod.out)
        output_mod._ConsoleHandler().emit(record)
    text = buffer.getvalue()
    assert not _raw_unsafe(text)
    # Recognisable: the escaped name, whole, on each channel's line.
    for line in (
        f"  • row 2: {shown} (id)",
        f"warning: held back: {shown}",
        f"warning: warning {shown}",
        f"message {shown}",
        f"next: batch-rotate verify {shown}",
        f"debug: row 2 {shown}",
    ):
        assert line in text.split("\n"), (line, text)
    logged = SafeFormatter("%(levelname)s %(message)s").format(record)
    assert logged == f"DEBUG row 2 {shown}"
    document = safe_json({"name": name}, indent=2)
    assert not _raw_unsafe(document) and json.loads(document) == {"name": name}


def test_escapes_are_visible_and_stable() -> None:
    assert safe_text(HOSTILE) == (
        "KIOSK\\x1b]52;c;cHduZWQ=\\x07-01\\x1b[2J\\r\\n\\u202eexe.txt\\x9b31m\\u2066"
    )
    assert safe_text(safe_text(HOSTILE)) == safe_text(HOSTILE)
    assert safe_text("Büro-PC 東京 ok") == "Büro-PC 東京 ok"  # printable text untouched
    assert safe_text("\U000e0041\ud800") == "\\U000e0041\\ud800"  # tag character, lone surrogate
    assert safe_lines("a\x1b\nb\u202e") == "a\\x1b\nb\\u202e"
    assert safe_text("\t\n", keep="\t") == "\t\\n"


def test_a_hostile_device_name_reaches_no_channel_raw(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    devices = [_device(1, HOSTILE), _device(2, "PLAIN-02")]
    inventory = tmp_path / "fleet.json"
    inventory.write_text(json.dumps(devices), encoding="utf-8")
    sim = make_sim(inventory_file=inventory)
    ids = tmp_path / "ids\x1b[2J\u202e.csv"  # a file name from outside too
    ids.write_text("Device ID\n" + "\n".join(d["id"] for d in devices) + "\n", encoding="utf-8")

    result = run_cli(
        ["rotate", str(ids), "--yes", "--debug", "--json", *sim_flags(sim)], env=sim.env()
    )

    assert result.exit_code == 0, result.output
    assert not _raw_unsafe(result.stderr), result.stderr  # progress, summary, -v/--debug lines
    assert "debug: row 2 " + safe_text(HOSTILE) in result.stderr
    assert not _raw_unsafe(result.stdout)
    doc = json.loads(result.stdout)  # one valid document
    assert doc["exit_code"] == 0
    (run_dir,) = run_dirs(tmp_path)
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert not _raw_unsafe(log) and safe_text(HOSTILE) in log
    events = (run_dir / "events.jsonl").read_text(encoding="utf-8")
    assert not _raw_unsafe(events)
    names = {json.loads(line)["device_name"] for line in events.splitlines()}
    assert names == {HOSTILE, "PLAIN-02"}  # the true value, once decoded
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        shown = {r["Device name"] for r in csv.DictReader(handle)}
    # XML cannot hold C0 controls: dropped (as before); C1 and bidi: escaped; line breaks kept.
    assert "KIOSK]52;c;cHduZWQ=-01[2J\r\n\\u202eexe.txt\\x9b31m\\u2066" in shown
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        stored = {row[0] for row in db.execute("SELECT device_name FROM devices")}
    finally:
        db.close()
    assert HOSTILE in stored  # the journal keeps the truth


def test_the_prompt_on_a_terminal_shows_a_hostile_name_escaped(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    devices = [_device(1, HOSTILE)]
    inventory = tmp_path / "fleet.json"
    inventory.write_text(json.dumps(devices), encoding="utf-8")
    sim = make_sim(inventory_file=inventory)
    ids = tmp_path / "ids.csv"
    ids.write_text(f"Device ID\n{devices[0]['id']}\n", encoding="utf-8")
    env = {**os.environ, **sim.env(), "COLUMNS": "300"}
    env.pop("SSL_CERT_FILE", None)
    raw: list[bytes] = []
    code, text = _run_on_tty(["rotate", str(ids), *sim_flags(sim)], env, tmp_path, "n", raw)
    assert code == 2, text
    assert f"row 2: {safe_text(HOSTILE)} ({devices[0]['id']})" in text
    for payload in ("\x1b]52", "\x07", "\x1b[2J", "\x9b", *BIDI):
        assert payload.encode() not in raw[0], payload


def test_the_device_code_message_is_shown_as_one_inert_line() -> None:
    class _App:
        def get_accounts(self) -> list[object]:
            return []

        def initiate_device_flow(self, scopes: list[str]) -> dict[str, str]:
            return {"user_code": "ABC", "message": "Open\x1b]8;;https://evil\x07 here\n\u202eedoc"}

        def acquire_token_by_device_flow(self, flow: dict[str, str]) -> dict[str, str]:
            return {"access_token": "t"}

    shown: list[str] = []
    provider = DeviceCodeTokenProvider.__new__(DeviceCodeTokenProvider)
    provider._app = _App()  # type: ignore[assignment]
    provider._endpoints = mock.Mock(scope="scope")
    provider.prompt = shown.append  # type: ignore[method-assign]
    assert provider._acquire(False) == {"access_token": "t"}
    assert shown == ["Open\\x1b]8;;https://evil\\x07 here\\n\\u202eedoc"]
