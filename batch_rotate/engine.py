"""Rotate every pending device of a journal through `$batch`, recording each answer at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.lane import Lane
from batch_rotate.graph.runner import BatchRunner, ItemResult, RunnerStats, Transport
from batch_rotate.journal import Journal
from batch_rotate.models import Outcome, Status
from batch_rotate.settings import Settings

QUEUED_REASON = "accepted by Intune; the device rotates at its next check-in"


def rotate_url(device_id: str) -> str:
    """Beta only: there is no v1.0 rotateBitLockerKeys (GRAPH_NOTES.md "The rotate action")."""
    return f"/deviceManagement/managedDevices/{device_id}/rotateBitLockerKeys"


def to_outcome(result: ItemResult) -> Outcome:
    """Map one item's answer to the journal: 204 queued, other final answers failed."""
    reason = ""
    if not result.final:
        status = Status.PENDING
    elif result.status is not None and 200 <= result.status < 300:
        status = Status.QUEUED
        reason = QUEUED_REASON
    else:
        status = Status.FAILED
        reason = result.reason or result.error.message
    return Outcome(
        row=result.item.key,
        status=status,
        http_status=result.status,
        error_code=result.error.code,
        message=result.error.message,
        request_id=result.request_id,
        client_request_id=result.item.client_request_id,
        reason=reason,
        answered_at=result.answered_at,
    )


async def rotate_pending(
    journal: Journal,
    graph: Transport,
    writes: Lane,
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_progress: Callable[[RunnerStats, int], None] | None = None,
    on_outcome: Callable[[Sequence[Outcome]], None] | None = None,
) -> RunnerStats:
    """Send every pending device once; a 204 is never sent again (the journal says so)."""
    todo = journal.to_send()
    items = [
        BatchItem(
            key=item.row,
            method="POST",
            url=rotate_url(item.device_id),
            client_request_id=str(uuid.uuid4()),
        )
        for item in todo
    ]
    runner = BatchRunner(
        graph,
        writes,
        batch_size=settings.batch_size,
        max_concurrency=settings.max_concurrency,
        max_attempts=settings.max_attempts,
    )
    total = len(items)

    def on_send(batch: Sequence[BatchItem]) -> None:
        journal.mark_in_flight([(item.key, item.client_request_id) for item in batch])

    def on_answer(results: Sequence[ItemResult]) -> None:
        outcomes = [to_outcome(result) for result in results]
        journal.record(outcomes)
        if on_outcome is not None:  # after the commit: a follower never sees an unrecorded answer
            on_outcome(outcomes)
        if on_progress is not None:
            on_progress(runner.stats, total)

    await runner.run(items, on_send=on_send, on_answer=on_answer, stop=stop)
    return runner.stats
