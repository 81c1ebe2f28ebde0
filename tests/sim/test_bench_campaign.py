"""The campaign bench's pure helpers (issue 21): its tenant ids are tenant ids to the tenants
file, and the aggregate sums every tenant's windows, ragged lists included."""

from __future__ import annotations

from batch_rotate.sim.bench_campaign import aggregate_windows, tenant_id
from batch_rotate.tenants import is_tenant_id


def test_bench_tenant_ids_are_distinct_tenant_ids_not_domains() -> None:
    ids = [tenant_id(n) for n in range(200)]
    assert all(is_tenant_id(i) for i in ids)
    assert len(set(ids)) == 200


def test_aggregate_windows_sums_by_window_over_ragged_tenants() -> None:
    assert aggregate_windows([[0, 200, 200], [0, 0, 195, 5], []]) == [0, 200, 395, 5]
    assert aggregate_windows([]) == []
