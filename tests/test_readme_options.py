"""The README's option tables and `--help` agree: every option of every command is in a table row
that names the command, and no row names an option or a command that does not take it."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import typer.main

from batch_rotate.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = ("rotate", "plan", "verify", "select", "sweep", "runs", "report")


def _readme_options() -> dict[str, set[str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Options", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = defaultdict(set)
    for line in section.replace("\\|", "/").splitlines():  # `NAME\|ID` is one cell
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`-"):
            continue
        flags = set(re.findall(r"`(-{1,2}[a-z][a-z-]*)`", cells[0]))
        for command in (c.strip() for c in cells[1].split(",")):
            found[command] |= flags
    return found


def _help_options() -> dict[str, set[str]]:
    group = typer.main.get_command(app)
    found: dict[str, set[str]] = {}
    for name in COMMANDS:
        command = group.commands[name]  # type: ignore[attr-defined]
        found[name] = {
            flag
            for param in command.params
            if getattr(param, "param_type_name", "") == "option"
            for flag in (*param.opts, *param.secondary_opts)
            if flag != "--help"
        }
    return found


def test_the_readme_tables_list_exactly_each_commands_options() -> None:
    readme, helped = _readme_options(), _help_options()
    assert set(readme) == set(COMMANDS)
    for name in COMMANDS:
        assert readme[name] == helped[name], (
            name,
            sorted(helped[name] - readme[name]),
            sorted(readme[name] - helped[name]),
        )


def test_every_graph_command_takes_every_sign_in_and_connection_option() -> None:
    helped = _help_options()
    shared = {"--auth", "--tenant-id", "--client-id", "--client-secret", "--certificate-path",
              "--managed-identity-client-id", "--token-cache", "--cloud", "--graph-url",
              "--authority-url", "--scope", "--ca-bundle", "--proxy", "--timeout"}  # fmt: skip
    for name in ("rotate", "plan", "verify", "select", "sweep"):
        assert shared <= helped[name], (name, sorted(shared - helped[name]))
    output = {"--json", "--quiet", "-q", "--verbose", "-v", "--debug", "--reports-dir", "--profile"}
    for name in COMMANDS:
        assert output <= helped[name], (name, sorted(output - helped[name]))


def test_help_is_readable_at_80_columns_in_panels() -> None:
    from typer.testing import CliRunner

    for name in ("", *COMMANDS):
        args = [name, "--help"] if name else ["--help"]
        shown = CliRunner().invoke(app, args, env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
        assert shown.exit_code == 0, shown.output
        assert "…" not in shown.output, (name, shown.output)  # no name or option cut short
        assert max(len(line) for line in shown.output.splitlines()) <= 80
    rotate = CliRunner().invoke(app, ["rotate", "--help"], env={"COLUMNS": "80"}).output
    for panel in ("Sign-in", "Connection", "Pacing", "Safety", "Input", "Selection", "Output"):
        assert f"─ {panel} ─" in rotate
