"""The pre-flight permission check: Entra's spelling in any case, broader documented permissions
count, and the refusal names the least-privileged one."""

from __future__ import annotations

import logging

import jwt
import pytest

from batch_rotate.graph.errors import SignInError
from batch_rotate.graph.permissions import INCLUDED_IN, granted, granting, holds
from batch_rotate.graph.session import Needs, check_permissions

TENANT = "00000000-0000-4000-8000-00000000a11c"
KEYS = Needs(("BitlockerKey.ReadBasic.All",), "read recovery key ages")


def _app(*roles: str) -> str:
    return jwt.encode({"tid": TENANT, "roles": list(roles)}, "k" * 32, algorithm="HS256")


def _user(*scopes: str) -> str:
    claims = {"tid": TENANT, "scp": " ".join(scopes), "upn": "admin@contoso.example"}
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


@pytest.mark.parametrize(
    "held",
    [
        "BitlockerKey.ReadBasic.All",  # Entra's spelling, as tokens carry it
        "BitLockerKey.ReadBasic.All",  # the prose pages' spelling
        "bitlockerkey.readbasic.all",
        "BitlockerKey.Read.All",  # broader: reads the keys themselves too
    ],
)
def test_key_reads_pass_with_any_spelling_and_the_broader_permission(held: str) -> None:
    check_permissions(_app(held), KEYS, TENANT)
    check_permissions(_user(held), KEYS, TENANT)


@pytest.mark.parametrize(
    ("needed", "held"),
    [
        ("DeviceManagementManagedDevices.Read.All", "DeviceManagementManagedDevices.ReadWrite.All"),
        ("Device.Read.All", "Directory.Read.All"),
        ("Device.Read.All", "Device.ReadWrite.All"),
        ("GroupMember.Read.All", "Group.Read.All"),
        ("GroupMember.Read.All", "Directory.Read.All"),
        ("GroupMember.Read.All", "directory.readwrite.all"),
        ("AuditLog.Read.All", "AUDITLOG.READ.ALL"),
    ],
)
def test_a_documented_broader_permission_satisfies_the_need(needed: str, held: str) -> None:
    check_permissions(_app(held), Needs((needed,), "read"), TENANT)


@pytest.mark.parametrize(
    ("needed", "held"),
    [
        ("BitlockerKey.ReadBasic.All", "Directory.Read.All"),  # not documented for keys
        ("DeviceManagementManagedDevices.ReadWrite.All", "DeviceManagementManagedDevices.Read.All"),
        ("GroupMember.Read.All", "Device.Read.All"),
        ("AuditLog.Read.All", "Directory.Read.All"),
    ],
)
def test_a_narrower_or_unrelated_permission_is_refused_naming_the_least_privileged(
    needed: str, held: str
) -> None:
    with pytest.raises(SignInError) as caught:
        check_permissions(_app(held), Needs((needed,), "do it"), TENANT)
    text = str(caught.value)
    assert f"lacks {needed}" in text
    assert f"application permission {needed} and grant admin consent" in text


def test_the_refusal_spells_the_permission_as_entra_does_and_lists_broader_ones() -> None:
    with pytest.raises(SignInError) as caught:
        check_permissions(_user("User.Read"), Needs(("BitLockerKey.ReadBasic.All",), "x"), TENANT)
    text = str(caught.value)
    assert "lacks the delegated permission BitlockerKey.ReadBasic.All" in text
    assert "(or a broader one: BitlockerKey.Read.All)" in text
    assert "admin@contoso.example" in text


def test_an_advisory_need_warns_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    need = Needs(("Directory.Read.All",), "read audit events", advisory=True)
    with caplog.at_level(logging.WARNING):
        check_permissions(_app("AuditLog.Read.All"), need, TENANT)
    assert "lacks Directory.Read.All" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_permissions(_app("Directory.ReadWrite.All"), need, TENANT)
    assert not caplog.text


def test_the_table_lists_each_need_first_and_never_twice() -> None:
    for needed, including in INCLUDED_IN.items():
        assert including[0] == needed
        assert len({p.lower() for p in including}) == len(including)
        assert granting(needed.upper()) == including


def test_granted_reads_roles_and_scopes_case_folded() -> None:
    held = granted({"roles": ["A.Read.All"], "scp": "b.read  C.Read.All"})
    assert held == {"a.read.all", "b.read", "c.read.all"}
    assert holds(held, "C.READ.ALL") and not holds(held, "D.Read.All")
    assert granted({"roles": "not a list"}) == frozenset()
