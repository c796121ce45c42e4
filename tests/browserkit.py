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
    from selenium.webdriver.common.by import By

    badges = driver.find_elements(By.CSS_SELECTOR, f'[data-load-balancer="{lb}"] [data-keystate]')
    return str(badges[0].get_attribute("data-keystate")) if badges else ""


def instance_health(driver: Any, lb: str) -> dict[str, str]:
    """Instance name -> the text of its row in the load balancer's card."""
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f'[data-load-balancer="{lb}"] tr[data-instance]')
    return {str(r.get_attribute("data-instance")): str(r.text) for r in rows}
