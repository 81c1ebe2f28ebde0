"""The BitLocker rotation HRESULT family: winerror.h names, a cause and a fix for each code."""

from __future__ import annotations

import pytest

from batch_rotate.hresults import HRESULTS, describe_hresult, hresult_hex, parse_hresult

# (signed Int32 as Graph's errorCode carries it, winerror.h symbolic name)
ROTATION_FAMILY = [
    (-2144272166, "FVE_E_AD_BACKUP_REQUIRED_POLICY_NOT_SET_OS_DRIVE"),
    (-2144272165, "FVE_E_AD_BACKUP_REQUIRED_POLICY_NOT_SET_FIXED_DRIVE"),
    (-2144272164, "FVE_E_AD_BACKUP_REQUIRED_POLICY_NOT_SET_REMOVABLE_DRIVE"),
    (-2144272163, "FVE_E_KEY_ROTATION_NOT_SUPPORTED"),
    (-2144272162, "FVE_E_EXECUTE_REQUEST_SENT_TOO_SOON"),
    (-2144272161, "FVE_E_KEY_ROTATION_NOT_ENABLED"),
    (-2144272160, "FVE_E_DEVICE_NOT_JOINED"),
    (-2144272159, "FVE_E_AAD_ENDPOINT_BUSY"),
]


@pytest.mark.parametrize(("signed", "name"), ROTATION_FAMILY)
def test_every_rotation_hresult_has_its_winerror_name_a_cause_and_a_fix(
    signed: int, name: str
) -> None:
    code = signed & 0xFFFFFFFF
    assert HRESULTS[code][0] == name
    cause, fix = describe_hresult(signed)
    assert cause.endswith(f"({name})")
    assert cause.removesuffix(f" ({name})")
    assert fix
    assert parse_hresult(str(signed)) == code
    assert parse_hresult(hresult_hex(signed)) == code


def test_the_family_is_contiguous_from_da_to_e1() -> None:
    assert [s & 0xFFFFFFFF for s, _ in ROTATION_FAMILY] == list(range(0x803100DA, 0x803100E2))


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (0x803100DC, "removable"),
        (0x803100DD, "1909"),
        (0x803100DE, "too soon"),
        (0x803100DF, "Client-driven recovery password rotation"),
        (0x803100E0, "join"),
    ],
)
def test_each_fix_points_at_what_to_change(code: int, words: str) -> None:
    cause, fix = describe_hresult(code)
    assert words.lower() in f"{cause} {fix}".lower()


def test_every_named_code_in_the_table_has_a_cause_and_a_fix() -> None:
    for code, (name, cause, fix) in HRESULTS.items():
        assert cause and fix, hresult_hex(code)
        assert not name or name.isupper(), name
