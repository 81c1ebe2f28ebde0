"""Batch building, splitting and response matching (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_rotate.graph.batch import (
    MAX_BATCH,
    USER_AGENT,
    BatchFormatError,
    BatchItem,
    build_payload,
    chunks,
    error_info,
    match_responses,
)


def _items(n: int, method: str = "POST") -> list[BatchItem]:
    return [
        BatchItem(
            key=100 + i,
            method=method,
            url=f"/deviceManagement/managedDevices/d{i}/rotateBitLockerKeys",
            client_request_id=f"c{i}",
        )
        for i in range(n)
    ]


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=MAX_BATCH))
def test_chunks_keep_every_item_once_in_order(n: int, size: int) -> None:
    items = _items(n)
    parts = list(chunks(items, size))
    assert [item for part in parts for item in part] == items
    assert all(1 <= len(part) <= size for part in parts)


@pytest.mark.parametrize("size", [0, 21])
def test_chunks_refuse_sizes_graph_refuses(size: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.20"):
        list(chunks(_items(3), size))


def test_payload_shape_for_rotate_matches_graph_docs() -> None:
    payload = build_payload(_items(2))
    first = payload["requests"][0]
    assert first == {
        "id": "1",
        "method": "POST",
        "url": "/deviceManagement/managedDevices/d0/rotateBitLockerKeys",
        "headers": {
            "client-request-id": "c0",
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
        },
        "body": {},
    }
    assert [r["id"] for r in payload["requests"]] == ["1", "2"]


def test_get_has_no_body_and_no_content_type() -> None:
    request = build_payload(_items(1, "GET"))["requests"][0]
    assert "body" not in request
    assert "Content-Type" not in request["headers"]


@pytest.mark.parametrize("n", [0, 21])
def test_payload_refuses_empty_or_oversized(n: int) -> None:
    with pytest.raises(ValueError):
        build_payload(_items(n))


@given(
    st.integers(min_value=1, max_value=20),
    st.randoms(use_true_random=False),
    st.data(),
)
def test_match_by_id_in_any_order_and_report_missing(
    n: int, rnd: random.Random, data: st.DataObject
) -> None:
    items = _items(n)
    answered = data.draw(st.sets(st.integers(min_value=1, max_value=n)))
    statuses = {i: data.draw(st.sampled_from([204, 404, 429, 500, 503])) for i in answered}
    responses = [
        {"id": str(i), "status": statuses[i], "headers": {"Retry-After": "3"}} for i in answered
    ]
    rnd.shuffle(responses)
    matched, missing = match_responses(items, {"responses": responses})
    assert {items[i - 1].key: statuses[i] for i in answered} == {
        k: v.status for k, v in matched.items()
    }
    assert missing == [item for pos, item in enumerate(items, start=1) if pos not in answered]
    for response in matched.values():
        assert response.header("Retry-After") == "3"


def test_unknown_repeated_or_statusless_ids_are_not_answers() -> None:
    items = _items(2)
    body = {
        "responses": [
            {"id": "1", "status": 204},
            {"id": "1", "status": 500},
            {"id": "9", "status": 204},
            {"id": "2"},
        ]
    }
    matched, missing = match_responses(items, body)
    assert matched[100].status == 204
    assert missing == [items[1]]


@pytest.mark.parametrize("body", [None, "<html>", {"value": []}, {"responses": "x"}, []])
def test_unusable_batch_bodies_raise(body: object) -> None:
    with pytest.raises(BatchFormatError):
        match_responses(_items(1), body)


def test_error_info_reads_standard_graph_error() -> None:
    body = {
        "error": {
            "code": "TooManyRequests",
            "message": "Too many requests",
            "innerError": {"request-id": "rid-1", "date": "2026-01-01T00:00:00"},
        }
    }
    info = error_info(body)
    assert (info.code, info.message, info.request_id) == (
        "TooManyRequests",
        "Too many requests",
        "rid-1",
    )
    assert error_info(None).code == ""
    assert error_info({"error": "flat"}).code == ""


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"code": "X", "innerError": "text"}}, ("X", "", "")),
        ({"error": "flat text"}, ("", "flat text", "")),
        ({"error": ["a", "b"]}, ("", "", "")),
        ([{"error": {"code": "X"}}], ("", "", "")),
        (
            {"error": {"code": 429, "message": None, "innererror": {"requestId": 7}}},
            ("429", "", "7"),
        ),
        (None, ("", "", "")),
    ],
)
def test_error_info_reads_odd_shapes_without_raising(
    body: object, expected: tuple[str, str, str]
) -> None:
    info = error_info(body)
    assert (info.code, info.message, info.request_id) == expected


@given(
    st.one_of(
        _JSON,
        st.fixed_dictionaries({"error": _JSON}),
        st.fixed_dictionaries(
            {
                "error": st.dictionaries(
                    st.sampled_from(["code", "message", "innerError", "innererror"]), _JSON
                )
            }
        ),
    )
)
def test_error_info_never_raises_on_any_json(body: object) -> None:
    info = error_info(body)
    assert all(isinstance(v, str) for v in (info.code, info.message, info.request_id))
