"""The simulated tenant's server: the aiohttp app, its routes, and `SimTenant` to run it in a thread.

Behaviour lives in tenant.py (Graph front door), identity.py, devices.py, keys.py, batch.py,
throttling.py, faults.py and escrow.py. Never imported by product code.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from batch_rotate.sim.config import FaultConfig, SimConfig
from batch_rotate.sim.inventory import Fleet
from batch_rotate.sim.tenant import Tenant
from batch_rotate.sim.tls import make_server_tls

__all__ = ["FaultConfig", "SimConfig", "SimTenant", "build_app", "serve_forever"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(tenant: Tenant) -> web.Application:
    """The routes; a middleware tracks concurrency, and every answer is dated on the tenant clock."""

    @web.middleware
    async def concurrency(request: web.Request, handler: Handler) -> web.StreamResponse:
        metrics = tenant.metrics
        metrics.in_flight += 1
        metrics.peak_concurrency = max(metrics.peak_concurrency, metrics.in_flight)
        try:
            return await handler(request)
        finally:
            tenant.metrics.in_flight -= 1

    async def date(request: web.Request, response: web.StreamResponse) -> None:
        # aiohttp dates answers on the local clock; the tenant's own clock may differ.
        response.headers["Date"] = tenant.clock.http_date()

    app = web.Application(middlewares=[concurrency], client_max_size=8 * 1024 * 1024)
    app.on_response_prepare.append(date)
    app.router.add_get("/_sim/metrics", tenant.metrics_view)
    app.router.add_post("/_sim/reset", tenant.reset_view)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", tenant.identity.openid)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", tenant.identity.token)
    app.router.add_post("/{tenant}/oauth2/v2.0/devicecode", tenant.device_codes.devicecode)
    app.router.add_post("/_sim/devicecode/approve", tenant.device_codes.approve_view)
    app.router.add_get("/{tenant}/oauth2/v2.0/authorize", tenant.auth_codes.authorize)
    app.router.add_get("/msi/token", tenant.managed_identities.app_service)
    app.router.add_get("/metadata/identity/oauth2/token", tenant.managed_identities.vm)
    app.router.add_route("*", r"/{version:(beta|v1\.0)}/{rest:.*}", tenant.graph)
    return app


class SimTenant:
    """The simulated tenant in a background thread with its own event loop; a context manager."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config or SimConfig()
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self._base = [""]
        self._tenant: Tenant | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self._base[0]

    @property
    def authority_url(self) -> str:
        return f"{self.base_url}/{self.config.tenant_id}"

    @property
    def graph_url(self) -> str:
        return self.base_url

    @property
    def ca_path(self) -> Path:
        return self.workdir / "ca.pem"

    @property
    def inventory(self) -> Fleet:
        """The fleet with current action results: a lazy sequence of device dicts (copies)."""
        assert self._tenant is not None, "start the SimTenant first"
        return self._tenant.fleet

    def env(self) -> dict[str, str]:
        return {
            "AZURE_TENANT_ID": self.config.tenant_id,
            "AZURE_CLIENT_ID": self.config.client_id,
            "AZURE_CLIENT_SECRET": self.config.client_secret,
        }

    def start(self) -> SimTenant:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            # Ctrl-C and SIGTERM must reach the main thread: a signal the kernel hands to this
            # thread would not wake the main thread's sleep, and the standalone server hung.
            if hasattr(signal, "pthread_sigmask"):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_server())
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_server())
            loop.close()

        self._thread = threading.Thread(target=run, name="sim-tenant", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    async def _start_server(self) -> None:
        context, _ = make_server_tls(self.workdir)
        self._tenant = Tenant(self.config, self._base)
        self._runner = web.AppRunner(
            build_app(self._tenant), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._base[0] = f"https://{self.host}:{self.port}"

    async def _stop_server(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # A TLS connection still open when the tenant stops waits (up to 30 s) for the client's
        # close_notify; the tenant is going away, so cut its connections instead of leaking them.
        for transport in _open_transports(self.port):
            transport.abort()
        await asyncio.sleep(0)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> SimTenant:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_loop(self, action: Callable[[Tenant], Any]) -> Any:
        """Run `action` on the server's loop, so it never races a request handler."""
        assert self._tenant is not None and self._loop is not None, "start the SimTenant first"
        tenant = self._tenant

        async def call() -> Any:
            return action(tenant)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    def metrics(self) -> dict[str, Any]:
        """The same JSON as GET /_sim/metrics."""
        result: dict[str, Any] = self._on_loop(lambda t: t.metrics.snapshot())
        return result

    def requests(self) -> list[str]:
        """Every Graph request received since the last reset (SimConfig.log_requests)."""
        found: list[str] = self._on_loop(lambda t: list(t.metrics.requests))
        return found

    def initial_key_count(self, device_id: str) -> int:
        """How many keys Entra held for the device before any rotation (seeded, pure)."""
        assert self._tenant is not None
        return self._tenant.escrow.behaviour(device_id).initial_keys

    def verification_truth(self) -> dict[str, str]:
        """Ground truth per rotated device id: what `verify` must report now."""
        assert self._tenant is not None and self._loop is not None
        tenant = self._tenant

        async def truth() -> dict[str, str]:
            out = {}
            for device_id in tenant.metrics.accepted_by_device:
                device = tenant.fleet.get(device_id)
                if device is not None:
                    out[device["id"]] = tenant.escrow.truth(device)
            return out

        return asyncio.run_coroutine_threadsafe(truth(), self._loop).result(30)

    def advance_days(self, days: float) -> None:
        """Move the tenant's clock forward: keys age, and every device not offline checks in
        (its lastSyncDateTime follows the clock; an offline one keeps its last check-in)."""

        def move(t: Tenant) -> None:
            t.clock.offset_s += days * 86400
            stamp = t.clock.iso(ms=True)
            for index in range(len(t.fleet)):
                device = t.fleet[index]
                if device["id"] not in t.escrow.offline:
                    t.fleet.set_property(device["id"], "lastSyncDateTime", stamp)

        self._on_loop(move)

    def set_offline(self, device_ids: set[str]) -> None:
        """These devices stop checking in (queued rotations wait) until taken out again."""
        self._on_loop(lambda t: setattr(t.escrow, "offline", set(device_ids)))

    def set_failing(self, device_ids: set[str]) -> None:
        """Rotations of these devices fail on the device (an HRESULT) until taken out again."""
        self._on_loop(lambda t: setattr(t.escrow, "failing", set(device_ids)))

    def reset_metrics(self) -> None:
        self._on_loop(lambda t: t.reset())

    # ---- the `select` stage's ground truth and sign-in hooks (issue 13) ----

    def tenant_now(self) -> datetime:
        """The tenant's clock now (key ages and audit times are on it)."""
        assert self._tenant is not None
        return self._tenant.clock.now()

    def select_truth(self, kind: str, *args: Any) -> set[str]:
        """Intune ids a selector must return: kind is exposed (since, read_by), keys_older
        (older_than), group (name or id) or all_windows; needs `SimConfig.targeting`."""

        def truth(t: Tenant) -> set[str]:
            assert t.targeting is not None, "start the sim with SimConfig(targeting=...)"
            if kind == "group":
                assert t.groups is not None
                return t.groups.truth(*args)
            result: set[str] = getattr(t.targeting, kind)(*args)
            return result

        found: set[str] = self._on_loop(truth)
        return found

    def count(self, name: str) -> int:
        """A counter outside the metrics snapshot (devicecode_requests, audit_requests, ...)."""
        found: int = self._on_loop(lambda t: t.metrics.counts.get(name, 0))
        return found

    def group_id(self, name: str) -> str:
        assert self._tenant is not None and self._tenant.groups is not None
        return self._tenant.groups.by_name(name)[0].id

    def approve_device_codes(self, upn: str | None) -> None:
        """Approve every device code as `upn` at its second poll (None: leave them pending)."""

        def set_upn(t: Tenant) -> None:
            t.device_codes.auto_approve = upn

        self._on_loop(set_upn)

    def sign_in_browser_as(self, upn: str | None, *, decline: bool = False) -> None:
        """The user signed in to the browser: `/authorize` issues codes for them (None: nobody,
        the sign-in page waits; `decline`: they cancel at the consent prompt)."""

        def set_upn(t: Tenant) -> None:
            t.auth_codes.browser_user = upn
            t.auth_codes.decline = decline

        self._on_loop(set_upn)

    def federated_token(self, **claims: Any) -> str:
        """A token of the outside issuer the app trusts (issuer, subject, audience, lifetime_s,
        issued_at override the federated credential's), as a pipeline writes it to a file."""
        token: str = self._on_loop(lambda t: t.federation.mint(**claims))
        return token

    def set_user_roles(self, upn: str, roles: list[str]) -> None:
        """Give `upn` these roles (names from sim/roles.py), replacing any it had."""
        self._on_loop(lambda t: t.admin_roles.set(upn, roles))


def _open_transports(port: int) -> list[asyncio.Transport]:
    """This loop's transports of connections to `port` that are not yet closed."""
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Transport):
            with contextlib.suppress(Exception):
                name = obj.get_extra_info("sockname")
                if name is not None and name[1] == port:
                    found.append(obj)
    return found


def serve_forever(
    config: SimConfig, *, host: str, port: int, workdir: Path, approve_as: str | None = None
) -> None:
    """Run standalone until Ctrl-C (or SIGTERM), printing what a client needs to use it."""
    # A shell starts a background job with SIGINT ignored, and Python then installs no handler:
    # Ctrl-C (kill -INT) would never stop it. Stopping is this command's whole interface.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sim = SimTenant(config, workdir=workdir, host=host, port=port).start()
    sim.approve_device_codes(approve_as)
    sim.sign_in_browser_as(
        approve_as
    )  # the same admin signs in to the browser (--auth interactive)
    ca = sim.ca_path.resolve()
    try:  # Ctrl-C may come while the banner is still being written
        print(
            f"simulated tenant running ({len(sim.inventory)} devices, time scale {config.time_scale})\n"
            f"  authority URL : {sim.authority_url}\n"
            f"  Graph URL     : {sim.graph_url}\n"
            f"  tenant id     : {config.tenant_id}\n"
            f"  client id     : {config.client_id}\n"
            f"  client secret : {config.client_secret}\n"
            f"  CA file       : {ca}\n\n"
            "In another shell:\n"
            f"  export AZURE_TENANT_ID={config.tenant_id} AZURE_CLIENT_ID={config.client_id} "
            f"AZURE_CLIENT_SECRET={config.client_secret}\n"
            f"  batch-rotate rotate inputs/sample-devices.csv --authority-url {sim.authority_url} "
            f"--graph-url {sim.graph_url} --ca-bundle {ca}\n\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        sim.stop()
