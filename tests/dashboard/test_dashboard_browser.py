"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium with the system chromedriver.

The control plane runs the whole API (KMS, ACM, Lightsail) and the dashboard; the data plane is simulated:
its health/metrics report goes through ``LightsailService.report`` (what ``POST /dataplane/v1/.../report``
calls) and its key state through ``KeyStates.report``. The test checks the page shows the grant, the
instances' health and key state LOADED, clicks Revoke, and sees the grant disappear and the key WIPED.
Screenshot: ``test-artifacts/dashboard.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browserkit import ARTIFACTS, chromium, key_state, wait_for

if TYPE_CHECKING:
    from tests.dashboard.conftest import Dash

LB = "demo-lb"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def test_revoke_in_the_browser(dash: Dash, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    key_id, grant_id = dash.set_up_demo(LB)
    browser.get(dash.url)

    row = f'tr[data-grant-id="{grant_id}"]'
    wait_for("the grant", lambda: browser.find_elements(By.CSS_SELECTOR, row))
    wait_for("key state LOADED", lambda: key_state(browser, LB) == "LOADED")
    wait_for("the live event stream", lambda: browser.find_element(By.ID, "conn").text == "live")
    assert "token=" not in browser.current_url  # the token left the address bar (sessionStorage keeps it)
    assert browser.find_element(By.CSS_SELECTOR, "#flow [data-keystate]").get_attribute("data-keystate") == "LOADED"
    grant_text = browser.find_element(By.CSS_SELECTOR, row).text
    assert "Decrypt" in grant_text and "DescribeKey" in grant_text and LB in grant_text
    if "Lightsail_20161128" in (dash.ct.plane.services if dash.ct.plane else {}):
        health = {
            r.get_attribute("data-instance"): r.text
            for r in browser.find_elements(By.CSS_SELECTOR, f'[data-load-balancer="{LB}"] tr[data-instance]')
        }
        assert "healthy" in health["web-1"] and "unhealthy" in health["web-3"], health
        assert "ResponseCodeMismatch" in health["web-3"]
        assert "IssuedThroughACM" in grant_text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-before-revoke.png"))

    browser.find_element(By.CSS_SELECTOR, f'{row} button[data-action="revoke"]').click()
    wait_for("the grant to disappear", lambda: not browser.find_elements(By.CSS_SELECTOR, row))
    assert dash.ct.client("kms").list_grants(KeyId=key_id)["Grants"] == []
    wait_for(
        "the audit line",
        lambda: any(
            "RevokeGrant" in li.text and "dashboard" in li.text
            for li in browser.find_elements(By.CSS_SELECTOR, "#audit li")
        ),
    )
    assert browser.find_element(By.CSS_SELECTOR, "#flow [data-grant-state]").get_attribute("data-grant-state") == "NONE"

    # The data plane saw grant.revoked, ended its key-holding workers, and reports the wipe.
    dash.report_key_state(LB, "WIPED", reason="grant revoked")
    wait_for("key state WIPED", lambda: key_state(browser, LB) == "WIPED")
    assert browser.find_element(By.CSS_SELECTOR, "#flow [data-keystate]").get_attribute("data-keystate") == "WIPED"
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
