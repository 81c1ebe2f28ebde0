"""Option groups, defined once and added to each command that takes them, and the one place where
the sources of a value are ranked: the command line, then the run's record, then the environment,
then a profile, then the default.

A command declares its own parameters and `given: Given`; `@takes(SIGN_IN, ...)` adds the groups'
parameters to the signature Typer reads, and hands the command their values and where each came
from (Click's parameter sources).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from batch_rotate.cli import choices as c
from batch_rotate.cli import options as o
from batch_rotate.cli import pacing as pc
from batch_rotate.context import NOT_RECORDED, SECRETS, record_of
from batch_rotate.errors import InputError
from batch_rotate.profiles import Profile, profile_for
from batch_rotate.settings import Cloud

Group = tuple[inspect.Parameter, ...]


def _group(*params: tuple[str, Any, Any]) -> Group:
    return tuple(
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
        for name, kind, default in params
    )


SIGN_IN = _group(
    ("auth", o.AuthOpt, o.AuthMode.APP),
    ("tenant_id", o.TenantOpt, ""),
    ("client_id", o.ClientOpt, ""),
    ("client_secret", o.SecretOpt, ""),
    ("certificate_path", o.CertOpt, None),
    ("certificate_password", o.CertPwOpt, ""),
    ("managed_identity_client_id", o.MiClientOpt, None),
    ("token_cache", o.TokenCacheOpt, None),
    ("federated_token_file", o.FederatedTokenOpt, None),
)
CONNECTION = _group(
    ("cloud", o.CloudOpt, Cloud.GLOBAL),
    ("graph_url", o.GraphUrlOpt, None),
    ("authority_url", o.AuthorityOpt, None),
    ("authority_host", o.AuthorityHostOpt, None),
    ("scope", o.ScopeOpt, None),
    ("ca_bundle", o.CaOpt, None),
    ("proxy", o.ProxyOpt, None),
    ("timeout", o.TimeoutOpt, 60.0),
    ("outage_timeout", o.OutageOpt, 60.0),
)
PACING = _group(
    ("batch_size", pc.BatchOpt, 20),
    ("max_concurrency", pc.ConcOpt, 4),
    ("write_budget", pc.WriteOpt, "200/20s"),
    ("read_budget", pc.ReadOpt, "2000/20s"),
    ("max_attempts", pc.AttemptsOpt, 8),
    ("retry_delay", pc.RetryDelayOpt, 1.0),
)
SAFETY = _group(
    ("max_devices", c.MaxDevOpt, 5000),
    ("check_keys", c.CheckKeysOpt, False),
    ("allow_key_ceiling", c.AllowCeilingOpt, False),
    ("recent", c.RecentOpt, "24h"),
    ("force_recent", c.ForceRecentOpt, False),
    ("uncertain_grace", c.UncertainGraceOpt, "10m"),
    ("check_recent_rotations", c.CheckRecentRotationsOpt, False),
)
INPUT = _group(
    ("id_column", c.IdColOpt, None),
    ("id_kind", c.IdKindOpt, None),
    ("sheet", c.SheetOpt, None),
)
SELECTION = _group(
    ("exposed_since", c.ExposedOpt, None),
    ("read_by", c.ReadByOpt, None),
    ("keys_older_than", c.KeysOlderOpt, None),
    ("group", c.GroupOpt, None),
    ("all_windows", c.AllWindowsOpt, False),
    ("exclude", c.ExcludeOpt, None),
)
CAMPAIGN = _group(
    ("tenants", c.TenantsOpt, None),
    ("tenants_at_once", c.TenantsAtOnceOpt, 10),
    ("all_or_nothing", c.AllOrNothingOpt, False),
)
TENANTS = CAMPAIGN[:2]  # `select --tenants`: no write, so no all-or-nothing
# Global: accepted before the command (`batch-rotate -q rotate`) and after it.
OUTPUT = _group(
    ("json_out", pc.JsonOpt, False),
    ("quiet", pc.QuietOpt, False),
    ("verbose", pc.VerboseOpt, False),
    ("debug", pc.DebugOpt, False),
    ("reports_dir", pc.ReportsOpt, Path("reports")),
    ("profile", pc.ProfileOpt, None),
    ("config", pc.ConfigOpt, None),
)


@dataclass
class Given:
    """The values of a command's options, and which the operator typed."""

    values: dict[str, Any]
    explicit: frozenset[str]  # typed on the command line (before or after the command)
    from_env: frozenset[str]
    profile: Profile | None = None
    profile_note: str = ""  # which profile applied, or where none was found
    recorded: frozenset[str] = frozenset()  # taken from the run's record
    _process: Callable[[str, Any], Any] = field(default=lambda _n, v: v, repr=False)
    flags: dict[str, str] = field(default_factory=dict)  # name -> its long option

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def replay(self, *groups: Group) -> tuple[str | Path, ...]:
        """What the operator typed of these groups, as arguments: a printed command that starts
        a new run (select's `plan FILE`, an interrupted plan's `plan INPUT`) keeps the same
        sign-in and choices. Never a secret; a recorded proxy's password stays `***`."""
        names = [p.name for group in groups for p in group] + ["profile", "config"]
        args: list[str | Path] = []
        for name in names:
            if name not in self.explicit or name in SECRETS or name not in self.flags:
                continue
            value = self.values[name]
            if isinstance(value, bool):
                args += [self.flags[name]] if value else []
            elif value is not None:
                text = record_of({name: value}).get(name, "")
                args += [self.flags[name], Path(text) if isinstance(value, Path) else text]
        return tuple(args)

    def with_record(self, record: Mapping[str, str]) -> Given:
        """A later command on a run: what the run recorded beats the environment and a profile;
        only what the operator types now beats the record."""
        values = dict(self.values)
        taken = set()
        for name, text in record.items():
            if name not in values or name in self.explicit or name in NOT_RECORDED:
                continue
            values[name] = None if text == "" else self._recorded(name, text)
            taken.add(name)
        return Given(
            values,
            self.explicit,
            self.from_env,
            self.profile,
            self.profile_note,
            frozenset(taken),
            self._process,
            self.flags,
        )

    def _recorded(self, name: str, text: str) -> Any:
        """A recorded value read back by its option's parser; one that no longer holds (a CA
        file since deleted) is the operator's to give again, never a silent fallback."""
        try:
            return self._process(name, text)
        except typer.BadParameter as exc:
            flag = "--" + name.replace("_", "-")
            gone = "no longer exists" if not Path(text).exists() else "is no longer valid"
            raise InputError(
                f"the run was made with {flag} {text}, which {gone} ({exc.message}); give it "
                f"again with {flag} VALUE"
            ) from None


def _source(ctx: typer.Context, name: str) -> str:
    """Where Click took a value from: COMMANDLINE, ENVIRONMENT, DEFAULT, ... ("" if unknown)."""
    source = ctx.get_parameter_source(name)
    return source.name if source is not None else ""


def takes(*groups: Group) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the groups' options to a command; it receives them as `given`."""
    extra = tuple(p for group in groups for p in group)
    names = frozenset(p.name for p in extra)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p
            for p in inspect.signature(func, eval_str=True).parameters.values()
            if p.name != "given"
        ]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            from batch_rotate.cli.exiting import exits
            from batch_rotate.cli.output import Mode

            ctx = kwargs.pop(_CTX)
            values = {name: kwargs.pop(name) for name in names}
            with exits(ctx.info_name or "", Mode(json=bool(values.get("json_out")))):
                given = _given(ctx, values)
            return func(**kwargs, given=given)

        del command.__wrapped__  # Typer must read the signature below, not the function's
        context = inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        params = [*own, *extra, context]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


_CTX = "typer_context"  # Typer passes the Click context to a parameter of this type


def _given(ctx: typer.Context, values: dict[str, Any]) -> Given:
    params = {p.name: p for p in ctx.command.params if p.name}
    outer: dict[str, tuple[Any, str]] = (ctx.find_root().obj or {}).get("globals", {})
    explicit, from_env = set(), set()
    for name in values:
        source = _source(ctx, name)
        if source == "COMMANDLINE":
            explicit.add(name)
        elif name in outer and outer[name][1] == "COMMANDLINE":
            values[name] = outer[name][0]  # given before the command
            explicit.add(name)
        elif source == "ENVIRONMENT":
            from_env.add(name)

    def process(name: str, raw: Any) -> Any:
        return params[name].process_value(ctx, raw)

    profile, note = profile_for(
        values.get("config"),
        values.get("profile"),
        named="profile" in explicit or "config" in explicit,
        used=frozenset(values),
    )
    if profile is not None:
        for name, raw in profile.values.items():
            if name in values and name not in explicit and name not in from_env:
                values[name] = process(name, raw)
    longs = {name: [o for o in param.opts if o.startswith("--")] for name, param in params.items()}
    flags = {name: opts[0] for name, opts in longs.items() if opts}
    return Given(
        values,
        frozenset(explicit),
        frozenset(from_env),
        profile,
        note,
        _process=process,
        flags=flags,
    )
