"""Interactive browser sign-in for tenants that block the device code flow: MSAL's authorization
code flow with PKCE on a loopback redirect (`http://localhost:<any port>`), or the Windows WAM
broker where MSAL offers it (msal[broker] installed); tokens persist in the same per-user cache
as device code, so later commands sign in silently.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import msal
from msal.oauth2cli import oauth2

from batch_rotate.graph.signin import _DelegatedProvider, inert

BROWSER_TIMEOUT_S = 300  # the admin has five minutes to finish in the browser
# What MSAL raises when no answer came back in time (looked up: not every release defines it).
_TIMED_OUT: type[Exception] = getattr(oauth2, "BrowserInteractionTimeoutError", TimeoutError)


def broker_available() -> bool:
    """WAM on Windows when msal[broker] (pymsalruntime) is installed: MSAL raises ImportError
    for an opted-in broker without it, so the tool opts in only then."""
    return sys.platform == "win32" and importlib.util.find_spec("pymsalruntime") is not None


class InteractiveTokenProvider(_DelegatedProvider):
    """Opens the system browser at the tenant's sign-in page and waits for the redirect back to
    a loopback port; where no browser opens, prints the address to open on this machine."""

    def _options(self) -> dict[str, Any]:
        return {"enable_broker_on_windows": True} if broker_available() else {}

    def _sign_in(self, app: msal.PublicClientApplication, scopes: list[str]) -> dict[str, Any]:
        def launching(ui: str = "browser", **_: Any) -> None:
            where = "the Windows sign-in window" if ui == "broker" else "your browser"
            self.prompt(f"Sign in to {self._endpoints.authority_url} in {where} ...")

        def no_browser(uri: str) -> None:
            self.prompt(
                f"No browser could be opened: open this address on this machine within "
                f"{BROWSER_TIMEOUT_S} s (or use --auth device-code): {inert(uri)}"
            )

        try:
            result = app.acquire_token_interactive(
                scopes,
                prompt=msal.Prompt.SELECT_ACCOUNT,
                timeout=BROWSER_TIMEOUT_S,
                # used by the WAM broker only: this is a console app
                parent_window_handle=app.CONSOLE_WINDOW_HANDLE,
                on_before_launching_ui=launching,
                auth_uri_callback=no_browser,  # passed through to MSAL's loopback receiver
            )
        except _TIMED_OUT:
            return {
                "error": "timed_out",
                "error_description": f"no sign-in came back from the browser in "
                f"{BROWSER_TIMEOUT_S} s",
            }
        return dict(result)

    def _describe(self, result: dict[str, Any]) -> str:
        hint = {
            "access_denied": "the sign-in or consent was declined in the browser",
            "timed_out": "run again and finish signing in, or use --auth device-code",
            "invalid_client": "add the redirect URI http://localhost under 'Mobile and desktop "
            "applications' on the app registration",
            "invalid_grant": "run again; if it repeats, check the app's redirect URI "
            "http://localhost and the user's consent",
            "unauthorized_client": "check AZURE_CLIENT_ID and AZURE_TENANT_ID",
        }.get(str(result.get("error")), "check the app registration and the user's consent")
        return f"{super()._describe(result)}; {hint}"
