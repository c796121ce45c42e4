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
from browserkit import ARTIFACTS, attribute_of, chromium, click, instance_health, key_state, text_of, wait_for

from lbproxy.contract.dataplane import KeyStateReport

if TYPE_CHECKING:
    from tests.dashboard.conftest import Dash

LB = "demo-lb"
LAST_EXIT = "worker 1 (pid 4242) killed by SIGKILL"
LISTENERS = ("http://127.0.0.1:8080", "https://127.0.0.1:8443", "https://[::1]:8443")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def test_revoke_in_the_browser(dash: Dash, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    key_id, grant_id = dash.set_up_demo(
        LB, workers=2, workers_expected=2, restarts=1, last_exit=LAST_EXIT, listeners=LISTENERS
    )
    browser.get(dash.url)

    row = f'tr[data-grant-id="{grant_id}"]'
    # The first paint already shows it (the page came with its state): no "connecting" page without content.
    assert browser.find_elements(By.CSS_SELECTOR, row), "the first paint shows no grant"
    wait_for("the grant", lambda: browser.find_elements(By.CSS_SELECTOR, row))
    wait_for("key state LOADED", lambda: key_state(browser, LB) == "LOADED")
    wait_for("the live event stream", lambda: browser.find_element(By.ID, "conn").text == "live")
    assert "token=" not in browser.current_url  # the token left the address bar (sessionStorage keeps it)
    # (Every read goes through wait_for: the page re-renders on each event, and an element held across a
    # re-render is stale.)
    wait_for(
        "the flow's key state", lambda: attribute_of(browser, "#flow [data-keystate]", "data-keystate") == "LOADED"
    )
    wait_for(
        "the grant's operations and name",
        lambda: all(w in text_of(browser, row) for w in ("Decrypt", "DescribeKey", "IssuedThroughACM")),
    )
    wait_for(
        "the grant's load balancer",
        lambda: text_of(browser, f"{row} [data-grant-load-balancer]") == f"for load balancer {LB}",
    )

    def health_shown() -> bool:
        health = instance_health(browser, LB)
        return (
            "healthy" in health.get("web-1", "")
            and "unhealthy" in health.get("web-3", "")
            and "ResponseCodeMismatch" in health.get("web-3", "")
        )

    wait_for("the instances' health", health_shown)
    # What the data plane reports about its worker processes.
    card = f'[data-load-balancer="{LB}"]'
    wait_for(
        "the worker processes",
        lambda: all(w in text_of(browser, card) for w in ("2 of 2 serving", f"1 (last: {LAST_EXIT})", "demo-cert")),
    )
    # The listeners are where the data plane really listens (its report), not Lightsail's 80/443; each instance
    # row shows the instance's own address.
    wait_for(
        "the real listeners",
        lambda: (
            all(f"{url}" in text_of(browser, card) for url in LISTENERS) and "HTTP :80" not in text_of(browser, card)
        ),
    )
    wait_for(
        "the instance addresses", lambda: "127.0.0.1:8001" in text_of(browser, f'{card} tr[data-instance="web-1"]')
    )
    # The certificate: sealed under ACM's key, in use by the load balancer (by name).
    wait_for(
        "the certificate's key and user",
        lambda: all(w in text_of(browser, "#certs [data-certificate]") for w in ("alias/aws/acm", LB)),
    )
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-before-revoke.png"))

    before = dash.state()["eventId"]
    click(browser, f'{row} button[data-action="revoke"]', "the revoke button")
    wait_for("the grant to disappear", lambda: not browser.find_elements(By.CSS_SELECTOR, row))
    assert dash.ct.client("kms").list_grants(KeyId=key_id)["Grants"] == []
    wait_for(
        "the audit line",
        lambda: any(
            "RevokeGrant" in li.text and "dashboard" in li.text
            for li in browser.find_elements(By.CSS_SELECTOR, "#audit li")
        ),
    )
    wait_for("no grant", lambda: attribute_of(browser, "#flow [data-grant-state]", "data-grant-state") == "NONE")
    # (until its data plane says otherwise; read through wait_for: the page may be re-rendering right now,
    # when the badge reads "" for a moment)
    assert wait_for("the key state badge", lambda: key_state(browser, LB)) == "LOADED"

    # The data plane: told on its own event stream, its grant no longer active, it ends its key-holding workers
    # and reports the wipe.
    dp = dash.data_plane(LB)
    [revoked] = dp.events(after=before)
    assert revoked["type"] == "grant.revoked" and revoked["detail"]["grantId"] == grant_id
    cert = dp.config().certificate
    assert cert is not None and cert.grant is not None and cert.grant.active is False
    dp.report(key_state=KeyStateReport(state="wiped", since=dash.ct.clock.time(), workers=2, workers_expected=2))
    wait_for("key state WIPED", lambda: key_state(browser, LB) == "WIPED")
    wait_for("the flow's WIPED", lambda: attribute_of(browser, "#flow [data-keystate]", "data-keystate") == "WIPED")
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
