"""The simulated cloud: one TLS server, one Graph URL and one authority host for many tenants.

The token's `tid` picks the tenant a Graph request sees; `/{tenant}/...` identity paths pick it
by id or verified domain. `SimTenant` (server.py) is a cloud of one. See README.md "Many tenants".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import re
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web

from batch_rotate.sim.cloudspec import APP_AUDIT_LIMIT, CONSENT_CODES, CloudTenant, Shared
from batch_rotate.sim.handle import TenantHandle
from batch_rotate.sim.tenant import Tenant
from batch_rotate.sim.tls import make_server_tls

__all__ = [
    "CloudTenant",
    "Directory",
    "SimCloud",
    "build_cloud_app",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_GRAPH = re.compile(r"/(beta|v1\.0)/")


class Directory:
    """The cloud's tenants by id and domain; the first answers what names no tenant."""

    def __init__(self, tenants: Sequence[Tenant]) -> None:
        self.tenants = list(tenants)
        self.default = self.tenants[0]
        self._by_name = {name: t for t in self.tenants for name in t.names}
        self._by_id = {t.config.tenant_id.lower(): t for t in self.tenants}

    def find(self, name: str) -> Tenant | None:
        return self._by_name.get(name.lower())

    def by_token(self, request: web.Request) -> tuple[Tenant, tuple[dict[str, Any] | None, str]]:
        """The tenant whose world a Graph request sees (its token's `tid`), and the check."""
        verified = self.default.tokens.verify(
            request.headers.get("Authorization"), self.default.base_url
        )
        claims = verified[0]
        found = self._by_id.get(str(claims.get("tid", "")).lower()) if claims else None
        return found or self.default, verified

    def foreign(self, tenant_id: str, path: str, query: str) -> bool:
        """True when the path or query names a device or key id of another tenant."""
        ids = {m.lower() for m in _GUID.findall(unquote(f"{path}?{query}"))}
        if not ids:
            return False
        segments = [s.lower() for s in path.split("/") if s]
        keys = {segments[i + 1] for i, s in enumerate(segments[:-1]) if s == "recoverykeys"}
        others = [t for t in self.tenants if t.config.tenant_id != tenant_id]
        # Key ids are looked up only where a path names one: that scan grows with rotations.
        return any(t.owns(i) for t in others for i in ids) or any(
            t.owns_key(k) for t in others for k in keys & ids
        )


def build_cloud_app(directory: Directory) -> web.Application:
    """The routes; a middleware picks the tenant, tracks its concurrency and dates the answer."""

    @web.middleware
    async def route(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if _GRAPH.match(path):
            tenant, request["sim_verified"] = directory.by_token(request)
        elif path.startswith("/_sim/"):
            tenant = directory.find(request.query.get("tenant", "")) or directory.default
        else:  # /{tenant}/... of the identity platform, or a managed identity endpoint
            tenant = directory.find(path.split("/")[1]) or directory.default
        request["sim_tenant"] = tenant
        metrics = tenant.metrics
        metrics.in_flight += 1
        metrics.peak_concurrency = max(metrics.peak_concurrency, metrics.in_flight)
        try:
            return await handler(request)
        finally:
            metrics.in_flight -= 1

    async def date(request: web.Request, response: web.StreamResponse) -> None:
        # aiohttp dates answers on the local clock; the tenant's own clock may differ.
        tenant: Tenant = request.get("sim_tenant") or directory.default
        response.headers["Date"] = tenant.clock.http_date()

    def to(pick: Callable[[Tenant], Handler]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await pick(request["sim_tenant"])(request)

        return handle

    async def graph(request: web.Request) -> web.StreamResponse:
        tenant: Tenant = request["sim_tenant"]
        return await tenant.graph(request, request["sim_verified"])

    app = web.Application(middlewares=[route], client_max_size=8 * 1024 * 1024)
    app.on_response_prepare.append(date)
    add_get, add_post = app.router.add_get, app.router.add_post
    add_get("/_sim/metrics", to(lambda t: t.metrics_view))
    add_post("/_sim/reset", to(lambda t: t.reset_view))
    add_get("/{tenant}/v2.0/.well-known/openid-configuration", to(lambda t: t.identity.openid))
    add_post("/{tenant}/oauth2/v2.0/token", to(lambda t: t.identity.token))
    add_post("/{tenant}/oauth2/v2.0/devicecode", to(lambda t: t.device_codes.devicecode))
    add_post("/_sim/devicecode/approve", to(lambda t: t.device_codes.approve_view))
    add_get("/{tenant}/oauth2/v2.0/authorize", to(lambda t: t.auth_codes.authorize))
    add_get("/msi/token", to(lambda t: t.managed_identities.app_service))
    add_get("/metadata/identity/oauth2/token", to(lambda t: t.managed_identities.vm))
    app.router.add_route("*", r"/{version:(beta|v1\.0)}/{rest:.*}", graph)
    return app


def _checked(specs: Sequence[CloudTenant]) -> list[CloudTenant]:
    """The specs with the first one's app in every tenant; refuses clashing ids and domains."""
    if not specs:
        raise ValueError("a SimCloud needs at least one CloudTenant")
    app = specs[0].config
    out, names = [], set()
    for spec in specs:
        if spec.consent is not None and spec.consent not in CONSENT_CODES:
            raise ValueError(
                f"consent must be None or one of {CONSENT_CODES}, not {spec.consent!r}"
            )
        for name in (spec.config.tenant_id, spec.domain):
            if name is not None and name.lower() in names:
                raise ValueError(f"two tenants of the cloud answer to {name!r}")
            if name is not None:
                names.add(name.lower())
        config = dataclasses.replace(
            spec.config,
            client_id=app.client_id,
            client_secret=app.client_secret,
            certificates=list(app.certificates),
        )
        out.append(dataclasses.replace(spec, config=spec.config if spec is specs[0] else config))
    return out


def _distinct_devices(tenants: Sequence[Tenant]) -> None:
    """Device ids are unique across the cloud (else `tid` routing could not be checked)."""
    seen: dict[str, str] = {}
    for tenant in tenants:
        for i in range(len(tenant.fleet)):
            device_id = tenant.fleet.id_at(i).lower()
            other = seen.setdefault(device_id, tenant.config.tenant_id)
            if other != tenant.config.tenant_id:
                raise ValueError(
                    f"device {device_id} is in tenants {other} and {tenant.config.tenant_id}: "
                    "give each tenant its own seed (or inventory)"
                )


class SimCloud:
    """The simulated cloud in a background thread with its own event loop; a context manager.

    Every tenant uses the first spec's app (client id, secret, certificates)."""

    def __init__(
        self,
        specs: Sequence[CloudTenant],
        *,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        app_audit_limit: int = APP_AUDIT_LIMIT,
    ) -> None:
        self.specs = _checked(specs)
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.app_audit_limit = app_audit_limit
        self._base = [""]
        self._directory: Directory | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self._base[0]

    @property
    def graph_url(self) -> str:
        return self.base_url

    @property
    def authority_host(self) -> str:
        """A tenant's authority is f"{authority_host}/{tenant id or domain}"."""
        return self.base_url

    @property
    def ca_path(self) -> Path:
        return self.workdir / "ca.pem"

    def env(self) -> dict[str, str]:
        """The one multi-tenant app's credentials (each tenant's handle adds its tenant id)."""
        app = self.specs[0].config
        return {"AZURE_CLIENT_ID": app.client_id, "AZURE_CLIENT_SECRET": app.client_secret}

    def tenant(self, name: str) -> TenantHandle:
        """The handle of the tenant with this id or domain."""
        return TenantHandle(self, self._world(name).config)

    def tenants(self) -> list[TenantHandle]:
        """Every tenant's handle, in the order of the specs."""
        return [self.tenant(spec.config.tenant_id) for spec in self.specs]

    def cross_tenant_requests(self) -> int:
        """Requests (direct or inside `$batch`) that named another tenant's device or key id."""
        directory = self._started()
        return self._call(
            lambda: sum(t.metrics.counts.get("cross_tenant_requests", 0) for t in directory.tenants)
        )

    def set_down(self, name: str, down: bool) -> None:
        """The tenant's Graph answers 503 (+ Retry-After) to everything until set False."""
        tenant = self._world(name)

        def switch() -> None:
            tenant.down = down

        self._call(switch)

    def _started(self) -> Directory:
        assert self._directory is not None, "start the simulated cloud first"
        return self._directory

    def _world(self, tenant: str) -> Tenant:
        found = self._started().find(tenant)
        if found is None:
            raise KeyError(f"no tenant {tenant!r} in this simulated cloud")
        return found

    def _call(self, action: Callable[[], T]) -> T:
        """Run `action` on the server's loop, so it never races a request handler."""
        assert self._loop is not None, "start the simulated cloud first"

        async def call() -> T:
            return action()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    def start(self) -> SimCloud:
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
        shared = Shared.alone(self.specs[0].config.time_scale, self.app_audit_limit)
        tenants = [Tenant(s.config, self._base, spec=s, shared=shared) for s in self.specs]
        if len(tenants) > 1:
            _distinct_devices(tenants)
        directory = Directory(tenants)
        if len(tenants) > 1:  # a cloud of one has nobody else's ids to look for
            shared.foreign = directory.foreign
        self._directory = directory
        self._runner = web.AppRunner(
            build_cloud_app(directory), access_log=None, handle_signals=False, shutdown_timeout=0.5
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
        # A TLS connection still open when the server stops waits (up to 30 s) for the client's
        # close_notify; the server is going away, so cut its connections instead of leaking them.
        for transport in _open_transports(self.port):
            transport.abort()
        await asyncio.sleep(0)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> SimCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
