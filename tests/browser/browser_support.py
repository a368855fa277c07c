"""browser_support.py -- what the browser tests share: the addresses that
tests/browser/run.sh hands over in the environment, and Debian's Chromium
started through Playwright for Python.

Playwright's own browser download cannot work on our machines (and is never
needed): Chromium is the system's, named by $CHROMIUM (default
/usr/bin/chromium) and given to Playwright as its executable path."""

import os

from playwright.sync_api import sync_playwright

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("SCREENSHOT_DIR", os.path.join(ROOT, "build", "screenshots"))


def env_required(*names):
    """The values of the environment variables names, or a failure that
    says how to run the tests (a plain `python3 -m unittest` has none)."""
    values = [os.environ.get(n) for n in names]
    missing = [n for n, v in zip(names, values) if not v]
    if missing:
        raise AssertionError(" and ".join(missing) + " not set: run tests/browser/run.sh")
    return values


class Browser:
    """One headless Chromium for a test class: start() in setUpClass,
    stop() in tearDownClass."""

    def __init__(self):
        self._pw = None
        self.browser = None

    def start(self):
        self._pw = sync_playwright().start()
        # --no-sandbox: CI runs as root, where Chromium's own sandbox
        # refuses to start; the pages are our own server's.
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        return self.browser

    def stop(self):
        if self.browser:
            self.browser.close()
            self.browser = None
        if self._pw:
            self._pw.stop()
            self._pw = None


def screenshot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name), full_page=True)
