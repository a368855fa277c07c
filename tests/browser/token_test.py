"""token_test.py -- a server started with --token: the page opened from the
printed address (?token=...) works (API calls, live events) and drops the
token from the address bar; opened without it, the page says what to do.
tests/browser/run.sh passes the address and token in EMILE_TOKEN_URL and
EMILE_TOKEN."""

import unittest
from urllib.parse import quote, urlsplit

from browser_support import Browser, env_required


class TokenPage(unittest.TestCase):
    """the page carries the access token: steps in order, on one page"""

    @classmethod
    def setUpClass(cls):
        cls.base, cls.token = env_required("EMILE_TOKEN_URL", "EMILE_TOKEN")
        cls.chromium = Browser()
        cls.page = cls.chromium.start().new_context().new_page()

    @classmethod
    def tearDownClass(cls):
        cls.chromium.stop()

    def test_1_without_token(self):
        """without the token the page says where to find it"""
        page = self.page
        page.goto(self.base)
        page.wait_for_selector("#banner:not([hidden])")
        self.assertRegex(page.text_content("#banner"), "access token")

    def test_2_with_token(self):
        """with ?token= the API answers and events flow"""
        page = self.page
        page.goto(self.base + "?token=" + quote(self.token, safe="") + "#kitchen")
        page.wait_for_selector("#live.on")
        page.wait_for_function("() => document.querySelectorAll('#f-op option').length > 0")
        self.assertTrue(page.is_hidden("#banner"))
        self.assertEqual(urlsplit(page.url).query, "", "the token left the address bar")
        # A reload keeps working from the tab's session storage.
        page.reload()
        page.wait_for_selector("#live.on")
        self.assertTrue(page.is_hidden("#banner"))
