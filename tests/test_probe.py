"""The ambiguous-column decision: sampling, the pure verdict, and the wording it leads to."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_rotate.inputs import read_device_list
from batch_rotate.models import DeviceRef, IdKind
from batch_rotate.probe import ASSUMED, READ, SAMPLED, Settled, Sighting, judge, sample
from batch_rotate.resolve_reasons import not_found_reason

GUIDS = [f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(1, 101)]


def _refs(values: list[str | None]) -> list[DeviceRef]:
    """Refs in row order; None stands for an unusable row (invalid_input)."""
    return [
        DeviceRef(row, v or "junk", IdKind.ENTRA_DEVICE_ID if v else None, v or "", None)
        for row, v in enumerate(values, start=2)
    ]


def test_sample_is_spread_over_the_file_and_distinct() -> None:
    picked = sample(_refs(list(GUIDS)), 10)
    assert picked == [GUIDS[i] for i in range(0, 100, 10)]  # first row, then every tenth


def test_sample_skips_unusable_rows_and_repeats_and_fills_up() -> None:
    values: list[str | None] = [None, GUIDS[0], GUIDS[0], None, GUIDS[1], GUIDS[0], GUIDS[2]]
    assert sample(_refs(values), 10) == GUIDS[:3]
    assert sample(_refs([None, None]), 10) == []
    assert sample([], 10) == []


def test_sample_of_a_long_file_reaches_its_end() -> None:
    values: list[str | None] = [GUIDS[0]] * 5000 + [GUIDS[1]]
    assert sample(_refs(values), 10) == GUIDS[:2]


def _seen(by_id: list[bool | None], by_entra: list[bool | None]) -> list[Sighting]:
    return [Sighting(GUIDS[n], i, e) for n, (i, e) in enumerate(zip(by_id, by_entra, strict=True))]


def test_all_found_by_id_are_intune_ids() -> None:
    verdict = judge(_seen([True] * 10, [False] * 10))
    assert verdict.kind is IdKind.INTUNE_ID and not verdict.mixed
    assert verdict.evidence == (
        "10 of 10 sampled values are Intune device IDs (GET by id found them; none is an Entra "
        "device ID)"
    )


def test_all_found_by_the_entra_filter_are_entra_ids() -> None:
    verdict = judge(_seen([False] * 4, [True] * 4))
    assert verdict.kind is IdKind.ENTRA_DEVICE_ID
    assert verdict.evidence.startswith("4 of 4 sampled values are Entra device IDs")


def test_one_sided_hits_decide_even_with_some_found_neither_way_or_unanswered() -> None:
    verdict = judge(_seen([True, True, False, None], [False, False, False, False]))
    assert verdict.kind is IdKind.INTUNE_ID
    assert verdict.evidence.startswith("2 of 4 sampled values are Intune device IDs")
    assert verdict.evidence.endswith("; 1 found neither way, 1 not answered")


@pytest.mark.parametrize(
    ("by_id", "by_entra"),
    [
        ([True, False, True], [False, True, False]),  # some each way
        ([True, True], [False, True]),  # one value found both ways
    ],
)
def test_hits_both_ways_decide_nothing(
    by_id: list[bool | None], by_entra: list[bool | None]
) -> None:
    verdict = judge(_seen(by_id, by_entra))
    assert verdict.kind is None and verdict.mixed
    assert "mixes both kinds" in verdict.evidence


def test_no_hits_decide_nothing() -> None:
    verdict = judge(_seen([False, False, None], [False, None, False]))
    assert verdict.kind is None and not verdict.mixed
    assert verdict.evidence.startswith("none of 3 sampled values was found")
    assert verdict.evidence.endswith("(2 not answered)")


def test_the_journal_meta_says_how_the_kind_was_settled(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(f"DeviceId\n{GUIDS[0]}\n", encoding="utf-8")
    devices = read_device_list(path)
    assert devices.ambiguous
    decided = devices.as_kind(IdKind.INTUNE_ID, "'DeviceId' was read as Intune device IDs")
    assert Settled(decided, SAMPLED).meta == {
        "id_kind": "intune_id",
        "id_kind_evidence": "'DeviceId' was read as Intune device IDs",
        "id_kind_basis": "sampled",
    }
    assert [r.kind for r in decided.refs] == [IdKind.INTUNE_ID]


def test_not_found_never_asserts_an_assumed_kind() -> None:
    assumed = not_found_reason(IdKind.ENTRA_DEVICE_ID, ASSUMED)
    assert assumed.startswith("not_found: not found as an Entra device ID")
    assert "assumed" in assumed and "--id-kind" in assumed
    assert "no Intune managed device has this" not in assumed
    sampled = not_found_reason(IdKind.INTUNE_ID, SAMPLED)
    assert "read as Intune device ID by sampling" in sampled
    read = not_found_reason(IdKind.INTUNE_ID, READ)
    assert "sampling" not in read and "assumed" not in read
    assert read == not_found_reason(IdKind.INTUNE_ID)
