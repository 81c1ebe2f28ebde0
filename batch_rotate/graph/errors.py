"""The Graph layer's own exceptions, mapped to the application's errors once, at the run boundary.

    GraphLayerError          anything that stops the Graph layer's caller
    ├── ConfigError          endpoints or credentials that cannot be used (bad URL, missing file)
    ├── SignInError          no token, a token refused after renewal, or a missing permission
    │   └── SignInAbandoned  the command was stopped while a device code waited (exit 130)
    ├── ServiceError         Graph answered in a way that stops the run (malformed batch, bad link)
    │   └── InvalidIdError   an id that is not a GUID was about to go into a URL (paths.py)
    └── TransportError       no usable HTTP answer (reset, timeout, TLS, unreadable body)

A single device's failure is data (an `ItemResult`), never one of these.
"""

from __future__ import annotations


class GraphLayerError(Exception):
    """Base of every error raised by `batch_rotate.graph`."""


class ConfigError(GraphLayerError):
    """The endpoints or credentials given cannot be used; the message names the option and fix."""


class SignInError(GraphLayerError):
    """Sign-in failed, Graph refused the token after renewal, or a permission is missing."""


class SignInAbandoned(SignInError):
    """The operator stopped the command while sign-in waited for them (a device code)."""


class ServiceError(GraphLayerError):
    """Graph answered in a way that stops the whole run."""


class InvalidIdError(ServiceError):
    """An id that is not a GUID reached a URL builder: refused, nothing is sent (`paths.py`)."""

    def __init__(self, value: str, what: str) -> None:
        super().__init__(
            f"refused to put {what} {value[:80]!r} into a Graph URL: it is not a GUID "
            "(8-4-4-4-12 hex); nothing was sent for it. Graph (or whatever answered as Graph) "
            "returned it; check the tenant and any proxy in between"
        )
        self.value = value


class TransportError(GraphLayerError):
    """No usable HTTP answer: connection reset, timeout, TLS failure, unreadable body.

    `maybe_sent` is False only when the request surely never reached Graph (no connection).
    """

    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent
