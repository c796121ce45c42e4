"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium with the system chromedriver.

The control plane runs the whole API (KMS, ACM, Lightsail), the data-plane routes and the dashboard; the data
plane is a stand-in that does what ``lbproxy lb`` does with the control plane, as its load balancer's principal:
it reports health, metrics and its key state through ``POST /dataplane/v1/load-balancers/NAME/report``, and
follows its event stream. The test checks the page shows the grant (for which load balancer), the instances'
health, the certificate and the key that seals it, and the key state LOADED with the worker processes; clicks
Revoke, sees the grant disappear; the data plane gets ``grant.revoked``, finds its grant inactive, reports its key
wiped, and the page shows WIPED. Screenshots: ``test-artifacts/dashboard-before-revoke.png``, ``dashboard.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browserkit import ARTIFACTS, chromium, instance_health, key_state, wait_for

from lbproxy.contract.dataplane import KeyStateReport

if TYPE_CHECKING:
    from tests.dashboard.conftest import Dash

LB = "demo-lb"
LAST_EXIT = "worker 1 (pid 4242) killed by SIGKILL"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def test_revoke_in_the_browser(dash: Dash, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    key_id, grant_id = dash.set_up_demo(LB, workers=2, workers_expected=2, restarts=1, last_exit=LAST_EXIT)
    browser.get(dash.url)

    row = f'tr[data-grant-id="{grant_id}"]'
    wait_for("the grant", lambda: browser.find_elements(By.CSS_SELECTOR, row))
    wait_for("key state LOADED", lambda: key_state(browser, LB) == "LOADED")
    wait_for("the live event stream", lambda: browser.find_element(By.ID, "conn").text == "live")
    assert "token=" not in browser.current_url  # the token left the address bar (sessionStorage keeps it)
    assert browser.find_element(By.CSS_SELECTOR, "#flow [data-keystate]").get_attribute("data-keystate") == "LOADED"
    grant_text = browser.find_element(By.CSS_SELECTOR, row).text
    assert "Decrypt" in grant_text and "DescribeKey" in grant_text and "IssuedThroughACM" in grant_text
    assert browser.find_element(By.CSS_SELECTOR, f"{row} [data-grant-load-balancer]").text == f"for load balancer {LB}"
    health = instance_health(browser, LB)
    assert "healthy" in health["web-1"] and "unhealthy" in health["web-3"], health
    assert "ResponseCodeMismatch" in health["web-3"]
    # What the data plane reports about its worker processes.
    card = browser.find_element(By.CSS_SELECTOR, f'[data-load-balancer="{LB}"]').text
    assert "2 of 2 serving" in card and f"1 (last: {LAST_EXIT})" in card and "demo-cert" in card
    # The certificate: sealed under ACM's key, in use by the load balancer (by name).
    cert_card = browser.find_element(By.CSS_SELECTOR, "#certs [data-certificate]").text
    assert "alias/aws/acm" in cert_card and LB in cert_card
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-before-revoke.png"))

    before = dash.state()["eventId"]
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
    assert key_state(browser, LB) == "LOADED"  # (until its data plane says otherwise)

    # The data plane: told on its own event stream, its grant no longer active, it ends its key-holding workers
    # and reports the wipe.
    dp = dash.data_plane(LB)
    [revoked] = dp.events(after=before)
    assert revoked["type"] == "grant.revoked" and revoked["detail"]["grantId"] == grant_id
    cert = dp.config().certificate
    assert cert is not None and cert.grant is not None and cert.grant.active is False
    dp.report(key_state=KeyStateReport(state="wiped", since=dash.ct.clock.time(), workers=2, workers_expected=2))
    wait_for("key state WIPED", lambda: key_state(browser, LB) == "WIPED")
    assert browser.find_element(By.CSS_SELECTOR, "#flow [data-keystate]").get_attribute("data-keystate") == "WIPED"
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
