"""A loopback stand-in for the admin's browser: what `webbrowser.open` does for MSAL's interactive
flow, without a screen. It follows the authorize URL to the simulated identity platform and sends
the answer (a self-posting form, or a redirect) back to MSAL's loopback receiver."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import requests


@dataclass
class LoopbackBrowser:
    """Records each address it was asked to open. `opens` False plays a machine where no browser
    starts: it answers False, and the admin then opens the printed address by hand."""

    ca_path: Path
    opens: bool = True
    visited: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def open(self, url: str, *_: object, **__: object) -> bool:
        self.visited.append(url)
        # a real browser returns at once and signs in on its own: so must this one
        threading.Thread(target=self._sign_in, args=(url,), daemon=True).start()
        return self.opens

    def _sign_in(self, url: str) -> None:
        try:
            with requests.Session() as session:
                page = session.get(url, verify=str(self.ca_path), allow_redirects=False, timeout=30)
                if page.status_code in (301, 302, 303):  # response_mode=query: GET the redirect
                    session.get(page.headers["Location"], timeout=30)
                    return
                form = re.search(r'<form method="POST" action="([^"]+)">(.*?)</form>', page.text)
                if form is None:  # an error page, or nobody signed in: the admin gives up
                    return
                fields = {
                    unescape(name): unescape(value)
                    for name, value in re.findall(
                        r'<input type="hidden" name="([^"]*)" value="([^"]*)"/>', form.group(2)
                    )
                }
                session.post(unescape(form.group(1)), data=fields, timeout=30)
        except BaseException as exc:  # reported by the test, never lost in a thread
            self.errors.append(exc)
