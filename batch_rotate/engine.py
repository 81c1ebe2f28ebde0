"""Rotate every pending device of a journal through `$batch`, recording each answer at once.

A rotation whose answer was lost is checked with a read before it is ever sent again, and never
sent again while the tenant may not show it yet (`UNCERTAIN_GRACE_S`; see `check_in_flight`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from batch_rotate.actions import RotationAction, rotation_action
from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.paths import device_path
from batch_rotate.graph.runner import ItemResult, RunnerStats
from batch_rotate.graph.session import GraphSession
from batch_rotate.journal import Journal
from batch_rotate.journal_send import LostItem, SendItem
from batch_rotate.models import Outcome, Status
from batch_rotate.tenant_clock import CLOCK_MARGIN_S, iso, parse_graph_time

QUEUED_REASON = "accepted by Intune; the device rotates at its next check-in"
# How long Intune may take to show an accepted rotation in deviceActionResults. Graph documents
# no bound; the assumption is that its read side lags a write by seconds to a few minutes, so
# 10 minutes is a margin (--uncertain-grace). Within it, "no action seen" proves nothing.
UNCERTAIN_GRACE_S = 600.0


def rotate_url(device_id: str) -> str:
    """Beta only: there is no v1.0 rotateBitLockerKeys (GRAPH_NOTES.md "The rotate action")."""
    return device_path(device_id, "/rotateBitLockerKeys")


def to_outcome(result: ItemResult) -> Outcome:
    """Map one item's answer to the journal: 204 queued, a lost answer stays in flight (checked
    before any resend), other final answers failed."""
    reason = ""
    if not result.final:
        status = Status.PENDING
    elif result.lost:
        status = Status.IN_FLIGHT
        reason = f"{result.reason}; checking the device before sending again"
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
    session: GraphSession,
    *,
    stop: asyncio.Event,
    on_progress: Callable[[RunnerStats, int], None] | None = None,
    on_outcome: Callable[[Sequence[Outcome]], None] | None = None,
    uncertain_grace_s: float = UNCERTAIN_GRACE_S,
) -> RunnerStats:
    """Send every pending device; a 204 is never sent again, and an unknown answer is checked
    before the device is sent again (a lost answer may hide an accepted rotation).

    Rounds: check the rows in flight, send what is pending (lost answers stay in flight), repeat
    until nothing is in flight or the attempts are spent (those rows end `uncertain`). Rows
    still in their grace period end `uncertain` too: a resume after it checks them again.
    """
    stats = RunnerStats(started=session.clock.now())
    total = len(journal.to_send()) + len(journal.in_flight())
    for _ in range(session.max_attempts):
        if journal.in_flight():
            await check_in_flight(journal, session, grace_s=uncertain_grace_s)
        todo = journal.to_send()
        if stop.is_set() or not todo:
            break
        stats = await _send_round(journal, session, todo, stop, (on_progress, on_outcome), total)
        if not journal.in_flight():
            break
    return stats


async def _send_round(
    journal: Journal,
    session: GraphSession,
    todo: Sequence[SendItem],
    stop: asyncio.Event,
    hooks: tuple[
        Callable[[RunnerStats, int], None] | None, Callable[[Sequence[Outcome]], None] | None
    ],
    total: int,
) -> RunnerStats:
    on_progress, on_outcome = hooks
    items = [
        BatchItem(
            key=item.row,
            method="POST",
            url=rotate_url(item.device_id),
            client_request_id=str(uuid.uuid4()),
        )
        for item in todo
    ]
    runner = session.runner(writes=True, hand_back_lost=True)

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


async def check_in_flight(
    journal: Journal, session: GraphSession, *, grace_s: float = UNCERTAIN_GRACE_S
) -> tuple[int, int]:
    """Read each in-flight device's BitLocker action: started at or after our request means
    Intune has it (queued, flagged); otherwise it goes back to be sent, but only once its request
    is `grace_s` old. Returns (confirmed, resend).

    The model: a lost answer may hide an accepted rotation that Intune shows only later, so
    "no action seen" counts only after the grace period; until then the row stays in flight
    (`uncertain`, its reason says from when it is checked again) and is never re-sent. The
    action's startDateTime is on the tenant's clock, our send time on ours: the offset is
    measured from each answer's Date header against the session's clock (GRAPH_NOTES.md
    "Device action results").
    """
    lost = journal.in_flight()
    items = [
        BatchItem(
            key=n,
            method="GET",
            url=device_path(item.device_id, "?$select=id,deviceActionResults"),
            client_request_id=str(uuid.uuid4()),
        )
        for n, item in enumerate(lost)
    ]
    confirmed: dict[int, tuple[str, str]] = {}
    resend: list[int] = []
    waiting: dict[int, str] = {}

    def unseen(item: LostItem, now: datetime) -> None:
        """No rotation seen: sent again only when the tenant had the grace period to show it."""
        sent = parse_graph_time(item.sent_at)
        due = None if sent is None else sent + timedelta(seconds=grace_s)
        if due is None or now >= due:
            resend.append(item.row)
            return
        waiting[item.row] = (
            f"its answer was lost and Intune does not show the rotation yet (it may show an "
            f"accepted one only minutes later), so it is not sent again before "
            f"{iso(due)} (--uncertain-grace {grace_s:g}s); resume the run after then: it is "
            "checked again first"
        )

    def on_answer(results: Sequence[ItemResult]) -> None:
        received = datetime.fromtimestamp(session.clock.epoch(), UTC)  # our clock, as sent_at
        for result in results:
            if not result.final:
                continue
            item = lost[result.item.key]
            if result.status == 404:
                resend.append(item.row)  # gone: the resend will fail with Graph's own answer
                continue
            if result.status != 200 or not isinstance(result.body, dict):
                continue  # unknown still: stays in flight for the next round
            action = rotation_action(result.body) or RotationAction()
            started, state, updated = action.started, action.state.lower(), action.updated
            offset = _offset_s(result.answered_at, received)
            sent = parse_graph_time(item.sent_at)
            when = started.isoformat(timespec="seconds").replace("+00:00", "Z") if started else ""
            if (
                started is not None
                and sent is not None
                and started >= sent + timedelta(seconds=offset - CLOCK_MARGIN_S)
            ):
                confirmed[item.row] = (
                    f"{QUEUED_REASON} (its answer was lost; Intune shows the rotation started "
                    f"at {when})",
                    when,
                )
            elif (
                updated is not None
                and sent is not None
                and updated >= sent + timedelta(seconds=offset - CLOCK_MARGIN_S)
            ):
                # The device acted on its rotation after our request left (an earlier request's
                # action, merged with ours): its key was rotated after we asked.
                confirmed[item.row] = (
                    f"{QUEUED_REASON} (its answer was lost; the device's rotation, requested at "
                    f"{when}, was last updated after this request: {state or 'unknown state'})",
                    when,
                )
            elif started is not None and state in _WAITING:
                # A rotation requested earlier still waits for the device: sending again could
                # only queue the same action twice. The device rotates at its next check-in.
                confirmed[item.row] = (
                    f"{QUEUED_REASON} (its answer was lost; a rotation requested at {when} is "
                    "still pending on the device, so it was not sent again)",
                    when,
                )
            else:
                unseen(item, received)

    await session.runner().run(items, on_send=lambda _: None, on_answer=on_answer)
    journal.settle_in_flight(confirmed, resend)
    journal.set_reasons(waiting)  # still in flight: shown `uncertain`, with when it is checked
    return len(confirmed), len(resend)


_WAITING = frozenset({"pending", "active"})  # actionState values of a queued action


def _offset_s(answered_at: str, received: datetime) -> float:
    """The tenant's clock minus ours, from an answer's Date (0 when there was none)."""
    tenant = parse_graph_time(answered_at)
    return 0.0 if tenant is None else (tenant - received).total_seconds()
