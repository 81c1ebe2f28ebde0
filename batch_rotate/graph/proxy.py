"""Which proxy a request goes through, decided once for sign-in (requests) and Graph (aiohttp).

Behind a proxy, sign-in worked (requests reads HTTPS_PROXY) while every Graph call failed (aiohttp
does not): so both transports ask `proxy_for`, which reads the environment exactly as requests does.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from batch_rotate.graph.errors import ConfigError

PROXY_SCHEMES = ("http", "https")
REDACTED = "***"


def proxy_for(url: str, explicit: str | None) -> str | None:
    """`--proxy` for every request; else HTTPS_PROXY/HTTP_PROXY/ALL_PROXY unless NO_PROXY matches.

    requests' own functions, so sign-in and Graph never disagree (NO_PROXY suffixes, CIDR
    ranges and `*` included). An explicit proxy wins over the environment, NO_PROXY included,
    as it does in requests and pip.
    """
    if explicit:
        return explicit
    import requests.utils  # only when a request is made: the command line starts faster

    proxies = requests.utils.get_environ_proxies(url)  # {} when NO_PROXY names the host
    found = requests.utils.select_proxy(url, proxies)
    if not found:
        return None
    # HTTPS_PROXY=proxy:3128 is common; requests reads it as http://proxy:3128, so do we
    return str(found) if "://" in str(found) else f"http://{found}"


def check_proxy(url: str, *, source: str = "--proxy") -> str:
    """An http(s)://host:port proxy URL (user:password allowed); ConfigError names the rule."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        raise ConfigError(
            f"{source} {redact(url)!r} is not a URL; write http://host:port"
        ) from None
    if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname:
        raise ConfigError(
            f"{source} {redact(url)!r}: give an http:// (or https://) proxy as http://host:port; "
            "SOCKS proxies are not supported"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{source} {redact(url)!r}: give only http://host:port, no path")
    return url


def redact(url: str) -> str:
    """The URL with any user:password replaced by ***: what may be printed or recorded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", f"//{REDACTED}@", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def is_redacted(url: str) -> bool:
    """True for a recorded proxy whose credentials were left out (they must be given again)."""
    return f"//{REDACTED}@" in url


def without_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(URL without user:password, user, password): aiohttp takes the credentials apart."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    user, password = parts.username, parts.password
    return (
        urlunsplit(parts._replace(netloc=host)),
        unquote(user) if user is not None else None,
        unquote(password) if password is not None else None,
    )
