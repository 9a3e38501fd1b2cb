"""A thin async face over headless Chromium (Debian's ``chromium`` and ``chromium-driver``)
for the page's tests, shared by the test modules through the ``browser`` fixture.

Selenium is synchronous, so every call goes through ``asyncio.to_thread`` and the event
loop keeps serving the App and the receivers meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TIMEOUT = 15.0
# An element can be replaced by the page's refresh between finding and using it.
FLAKY = (
    NoSuchElementException,
    StaleElementReferenceException,
    ElementNotInteractableException,
    ElementClickInterceptedException,
)


class Browser:
    """A thin async face over one headless Chromium session."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    async def open(self, url: str) -> None:
        """Load ``url``."""
        await asyncio.to_thread(self.driver.get, url)

    async def until(self, check: Callable[[WebDriver], Any], message: str, timeout: float = TIMEOUT) -> Any:
        """Poll ``check`` until it returns something truthy; fail with ``message`` and the page's text."""

        def run() -> Any:
            wait = WebDriverWait(self.driver, timeout, poll_frequency=0.05, ignored_exceptions=FLAKY)
            return wait.until(check, message)

        try:
            return await asyncio.to_thread(run)
        except Exception as exc:
            body = await asyncio.to_thread(lambda: self.driver.find_element(By.TAG_NAME, "body").text)
            raise AssertionError(f"{message}\n--- page text ---\n{body}") from exc

    async def text(self, css: str, contains: str = "") -> str:
        """Wait for a visible element matching ``css`` whose text has ``contains``; return its text."""

        def check(d: WebDriver) -> str | None:
            for el in d.find_elements(By.CSS_SELECTOR, css):
                if el.is_displayed() and contains in el.text:
                    return str(el.text)
            return None

        return str(await self.until(check, f"no visible {css!r} with text {contains!r}"))

    async def count(self, css: str, n: int) -> None:
        """Wait until exactly ``n`` elements match ``css``."""
        await self.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, css)) == n, f"want {n} of {css!r}")

    async def click(self, css: str) -> None:
        """Click the element matching ``css`` once it is there and clickable."""

        def check(d: WebDriver) -> bool:
            d.find_element(By.CSS_SELECTOR, css).click()
            return True

        await self.until(check, f"could not click {css!r}")

    async def type(self, css: str, text: str) -> None:
        """Clear the field matching ``css`` and type ``text``."""

        def check(d: WebDriver) -> bool:
            el = d.find_element(By.CSS_SELECTOR, css)
            el.clear()
            el.send_keys(text)
            return True

        await self.until(check, f"could not type into {css!r}")

    async def choose(self, css: str, value: str) -> None:
        """Pick the option of value ``value`` in the select matching ``css``."""

        def check(d: WebDriver) -> bool:
            Select(d.find_element(By.CSS_SELECTOR, css)).select_by_value(value)
            return True

        await self.until(check, f"could not choose {value!r} in {css!r}")

    async def value(self, css: str) -> str:
        """The current value of the field matching ``css``."""
        el = await asyncio.to_thread(self.driver.find_element, By.CSS_SELECTOR, css)
        return str(await asyncio.to_thread(el.get_property, "value"))

    async def attr(self, css: str, name: str) -> str | None:
        """An attribute of the first element matching ``css``."""
        return await asyncio.to_thread(lambda: self.driver.find_element(By.CSS_SELECTOR, css).get_attribute(name))

    async def script(self, source: str) -> Any:
        """Run JavaScript in the page."""
        return await asyncio.to_thread(self.driver.execute_script, source)

    async def async_script(self, source: str) -> Any:
        """Run JavaScript in the page that calls ``done(result)`` when it has its answer."""
        return await asyncio.to_thread(self.driver.execute_async_script, "const done = arguments[0];\n" + source)

    async def cdp(self, command: str, params: dict[str, Any]) -> Any:
        """One Chrome DevTools Protocol command."""
        return await asyncio.to_thread(self.driver.execute_cdp_cmd, command, params)

    async def screenshot(self, path: Path) -> None:
        """Save the whole page, 1280 px wide, as a PNG."""

        def shoot() -> None:
            height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
            metrics = {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False}
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.driver.save_screenshot(str(path))
            finally:
                self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

        await asyncio.to_thread(shoot)

    def errors(self) -> list[str]:
        """Console errors other than the browser's own notes on non-2xx answers."""
        logs = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [
            e["message"] for e in logs
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
        ]  # fmt: skip


def start_chromium(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1280,900", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
