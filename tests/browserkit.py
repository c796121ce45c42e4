"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Selenium with the system
``chromedriver``, a fresh profile per test, nothing fetched from the network. Tests skip (with the reason)
when selenium, the browser or the driver is missing."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1500",
)


@contextmanager
def chromium(profile_dir: Path) -> Iterator[Any]:
    """A WebDriver for headless Chromium with its own ``--user-data-dir``; skips when unavailable."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile_dir}"):
        opts.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    except WebDriverException as exc:
        pytest.skip(f"headless chromium did not start: {exc.msg}")
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 8.0) -> Any:
    """Poll ``predicate`` until truthy (bounded); a re-render under us counts as "not yet"."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except StaleElementReferenceException:
            last = None
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def key_state(driver: Any, lb: str) -> str:
    """The data plane's key state badge of load balancer ``lb`` (LOADED, WIPED, ...), or ""."""
    return attribute_of(driver, f'[data-load-balancer="{lb}"] [data-keystate]', "data-keystate")


def instance_health(driver: Any, lb: str) -> dict[str, str]:
    """Instance name -> the text of its row in the load balancer's card."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        rows = driver.find_elements(By.CSS_SELECTOR, f'[data-load-balancer="{lb}"] tr[data-instance]')
        return {str(r.get_attribute("data-instance")): str(r.text) for r in rows}
    except StaleElementReferenceException:  # (re-rendered under us: "not yet", as in wait_for)
        return {}


def text_of(driver: Any, selector: str) -> str:
    """The text of the first element matching ``selector`` now, "" when there is none or it was just re-rendered
    (the page re-renders on every event: read through this, inside ``wait_for``, never hold an element)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, selector)
        return str(found[0].text) if found else ""
    except StaleElementReferenceException:
        return ""


def attribute_of(driver: Any, selector: str, name: str) -> str:
    """An attribute of the first element matching ``selector`` now ("" as ``text_of``)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, selector)
        return str(found[0].get_attribute(name) or "") if found else ""
    except StaleElementReferenceException:
        return ""


def click(driver: Any, selector: str, what: str = "the button") -> None:
    """Click the element matching ``selector``, finding it again if a re-render replaced it (bounded)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
        except StaleElementReferenceException:
            return False
        return True

    wait_for(what, clicked)
