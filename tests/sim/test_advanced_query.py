"""The simulator refuses a type-cast member list without the advanced-query parameters, as the
docs say Graph does, and pages member lists and filtered device lookups when told to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from batch_rotate.sim import SimTenant
from batch_rotate.sim.targeting import TargetingConfig

from .helpers import call, token

EVENTUAL = {"ConsistencyLevel": "eventual"}


def _members(sim: SimTenant, query: str, headers: dict[str, str] | None = None) -> Any:
    gid = sim.group_id("Finance")
    path = f"/v1.0/groups/{gid}/transitiveMembers/microsoft.graph.device?{query}"
    return call(sim, "GET", path, token=token(sim), headers=headers)


@pytest.mark.parametrize(
    ("query", "headers"),
    [("$count=true", None), ("$select=id", EVENTUAL), ("", None)],
    ids=["no ConsistencyLevel", "no $count", "neither"],
)
def test_a_type_cast_member_list_needs_both_advanced_query_parameters(
    make_sim: Callable[..., SimTenant], query: str, headers: dict[str, str] | None
) -> None:
    sim = make_sim(targeting=TargetingConfig(), devices=200)
    status, _, body = _members(sim, query, headers)
    assert status == 400
    assert body["error"]["code"] == "Request_UnsupportedQuery"


def test_with_them_it_answers_counted_pages_that_keep_the_parameters(
    make_sim: Callable[..., SimTenant],
) -> None:
    sim = make_sim(targeting=TargetingConfig(), devices=200, filtered_page_size=3)
    status, _, body = _members(sim, "$count=true&$top=999&$select=id,deviceId", EVENTUAL)
    assert status == 200 and len(body["value"]) == 3
    total, seen = body["@odata.count"], list(body["value"])
    link = body["@odata.nextLink"]
    assert "$count=true" in link and "$top=3" in link
    while link:
        status, _, page = call(sim, "GET", link, token=token(sim), headers=EVENTUAL)
        assert status == 200
        seen += page["value"]
        link = page.get("@odata.nextLink", "")
    assert len(seen) == total > 3
    status, _, _ = call(sim, "GET", body["@odata.nextLink"], token=token(sim))
    assert status == 400  # a next page without the header is refused too


def test_the_switch_turns_the_requirement_off_and_top_is_bounded(
    make_sim: Callable[..., SimTenant],
) -> None:
    sim = make_sim(targeting=TargetingConfig(), devices=200, require_advanced_query=False)
    status, _, body = _members(sim, "")
    assert status == 200 and "@odata.count" not in body
    status, _, _ = _members(sim, "$count=true&$top=1000", EVENTUAL)
    assert status == 400  # a member list pages at most 999


def test_filtered_device_lookups_page_when_told(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(devices=300, filtered_page_size=1)
    windows = "operatingSystem eq 'Windows'"
    path = f"/beta/deviceManagement/managedDevices?$filter={windows}&$select=id"
    status, _, body = call(sim, "GET", path, token=token(sim))
    assert status == 200 and len(body["value"]) == 1 and "$filter=" in body["@odata.nextLink"]
    status, _, whole = call(sim, "GET", "/beta/deviceManagement/managedDevices", token=token(sim))
    assert len(whole["value"]) == 300  # unfiltered listings keep their page size
