"""Graph for the run layer: sign in with a command's settings, pace on its budgets, and turn the
Graph layer's errors into the application's (and so exit codes), in one place each.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence

from batch_rotate.errors import AuthError, GraphError, InputError
from batch_rotate.graph import errors as graph_layer
from batch_rotate.graph.client import GraphClient
from batch_rotate.graph.lane import Lane, lane
from batch_rotate.graph.pacer import Budget, SystemClock
from batch_rotate.graph.session import Needs, graph_session
from batch_rotate.settings import Credentials, Endpoints, Settings


def settings_lane(budget: Budget, settings: Settings) -> Lane:
    """The pacing lane for a budget (parsed and checked by settings)."""
    return lane(
        budget, clock=SystemClock(), retry_delay_s=settings.retry_delay_s, seed=settings.seed
    )


@contextlib.asynccontextmanager
async def signed_in(
    credentials: Credentials,
    settings: Settings,
    *,
    endpoints: Endpoints | None = None,
    needs: Needs | None = None,
    also: Sequence[Needs] = (),
) -> AsyncIterator[GraphClient]:
    """`graph_session` with the command's timeout and outage bound, so no stage forgets one."""
    async with graph_session(
        credentials,
        endpoints or settings.endpoints,
        needs=needs,
        timeout_s=settings.timeout_s,
        outage_s=settings.outage_s,
        also=also,
    ) as graph:
        yield graph


@contextlib.contextmanager
def graph_errors() -> Iterator[None]:
    """The one place the Graph layer's errors become the application's (and exit codes)."""
    try:
        yield
    except graph_layer.ConfigError as exc:
        raise InputError(str(exc)) from None
    except graph_layer.SignInError as exc:
        raise AuthError(str(exc)) from None
    except graph_layer.GraphLayerError as exc:  # ServiceError, TransportError
        raise GraphError(str(exc)) from None
