"""Eligibility rules (pure)."""

from __future__ import annotations

import pytest

from batch_rotate.eligibility import ineligibility
from batch_rotate.models import Device

GOOD = Device(
    id="11111111-1111-4111-8111-111111111111",
    name="LT-1",
    entra_device_id="22222222-2222-4222-8222-222222222222",
    os="Windows",
    os_version="10.0.22631.4460",
    join_type="azureADJoined",
    management_agent="mdm",
)


def _with(**changes: str) -> Device:
    from dataclasses import replace

    return replace(GOOD, **changes)


def test_eligible_windows_device_has_no_reason() -> None:
    assert ineligibility(GOOD) is None
    assert ineligibility(_with(join_type="hybridAzureADJoined", os_version="10.0.18363.1")) is None
    assert ineligibility(_with(management_agent="configurationManagerClientMdm")) is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"os": "macOS", "os_version": "14.5"}, "not_windows"),
        ({"os": "iOS"}, "not_windows"),
        ({"join_type": "azureADRegistered"}, "entra_registered_only"),
        ({"entra_device_id": ""}, "no_entra_device_id"),
        ({"entra_device_id": "00000000-0000-0000-0000-000000000000"}, "no_entra_device_id"),
        ({"os_version": "10.0.17763.1234"}, "os_too_old"),
        ({"management_agent": "eas"}, "not_intune_managed"),
    ],
)
def test_each_ineligibility_has_a_reason_code(changes: dict[str, str], code: str) -> None:
    reason = ineligibility(_with(**changes))
    assert reason is not None and reason.startswith(code + ":")


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"device_type": "cloudPC"}, "cloud_pc", "do not support BitLocker"),
        ({"device_type": "CLOUDPC", "model": ""}, "cloud_pc", "deviceType cloudPC"),
        ({"model": "Cloud PC Enterprise 2vCPU/8GB/128GB"}, "cloud_pc", "Cloud PC Enterprise"),
        ({"sku_number": "101"}, "windows_home", "SKU 101"),  # PRODUCT_CORE
        ({"sku_number": "98"}, "windows_home", "Pro, Enterprise or Education"),  # CORE_N
        ({"sku_number": "100", "sku_family": "Core"}, "windows_home", "(Core)"),
        ({"sku_family": "Home"}, "windows_home", "Home edition"),
    ],
)
def test_cloud_pcs_and_home_editions_are_ineligible_with_why(
    changes: dict[str, str], code: str, words: str
) -> None:
    reason = ineligibility(_with(**changes))
    assert reason is not None and reason.startswith(code + ":")
    assert words in reason


@pytest.mark.parametrize(
    "changes",
    [
        {"device_type": "desktop", "model": "Latitude 7440"},
        {"model": "Surface Laptop 6 (Cloud PC ready)"},  # "Cloud PC" not at the start
        {"sku_number": "4", "sku_family": "Enterprise"},  # PRODUCT_ENTERPRISE
        {"sku_number": "48", "sku_family": "Professional"},  # PRODUCT_PROFESSIONAL
        {"sku_number": "121", "sku_family": "Education"},  # PRODUCT_EDUCATION
        {"sku_number": "", "sku_family": ""},  # not reported: no reason to refuse
    ],
)
def test_physical_pro_enterprise_education_devices_stay_eligible(changes: dict[str, str]) -> None:
    assert ineligibility(_with(**changes)) is None
