"""Graph for the run layer: sign in with a command's settings into one `GraphSession` (paced on
its budgets), and turn the Graph layer's errors into the application's, in one place each.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence

from batch_rotate.errors import AuthError, GraphError, InputError
from batch_rotate.graph import errors as graph_layer
from batch_rotate.graph.pacer import Clock
from batch_rotate.graph.session import GraphSession, Needs, Pacing, graph_session
from batch_rotate.interrupts import Interrupted
from batch_rotate.settings import Credentials, Endpoints, Settings


def pacing(settings: Settings) -> Pacing:
    """The command's budgets, attempts and concurrency, as the Graph layer takes them."""
    return Pacing(
        read_budget=settings.read_budget,
        write_budget=settings.write_budget,
        max_attempts=settings.max_attempts,
        max_concurrency=settings.max_concurrency,
        batch_size=settings.batch_size,
        retry_delay_s=settings.retry_delay_s,
        seed=settings.seed,
    )


@contextlib.asynccontextmanager
async def signed_in(
    credentials: Credentials,
    settings: Settings,
    *,
    endpoints: Endpoints | None = None,
    needs: Needs | None = None,
    also: Sequence[Needs] = (),
    clock: Clock | None = None,
) -> AsyncIterator[GraphSession]:
    """`graph_session` with the command's timeout, outage bound and pacing, so no stage forgets
    one; `clock` is the real one unless a test gives another."""
    async with graph_session(
        credentials,
        endpoints or settings.endpoints,
        pacing=pacing(settings),
        needs=needs,
        timeout_s=settings.timeout_s,
        outage_s=settings.outage_s,
        also=also,
        clock=clock,
    ) as session:
        yield session


@contextlib.contextmanager
def graph_errors() -> Iterator[None]:
    """The one place the Graph layer's errors become the application's (and exit codes)."""
    try:
        yield
    except graph_layer.ConfigError as exc:
        raise InputError(str(exc)) from None
    except graph_layer.SignInAbandoned as exc:  # Ctrl-C while a device code waited
        raise Interrupted(f"{exc}: nothing was sent; run the command again to sign in") from None
    except graph_layer.SignInError as exc:
        raise AuthError(str(exc)) from None
    except graph_layer.GraphLayerError as exc:  # ServiceError, TransportError
        raise GraphError(str(exc)) from None
