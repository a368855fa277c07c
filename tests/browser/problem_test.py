"""problem_test.py -- a PyTorch problem in the Kitchen: a PyTorch example
fills the form with the op and its parameters hidden; a pasted problem whose
get_inputs() raises is refused before the cook, the error shown with its
line number and that line selected in the text; a good pasted problem is
described (its op and tensors shown) and cooks.  tests/browser/run.sh passes
the server's address in EMILE_URL."""

import os
import unittest

from browser_support import ROOT, Browser, env_required, screenshot

RAISES = open(os.path.join(ROOT, "tests/data/pytorch/inputs_raise.py")).read()
GOOD = open(os.path.join(ROOT, "tests/data/pytorch/fused_rows.py")).read()


class PastedProblem(unittest.TestCase):
    """the Kitchen takes a PyTorch problem: steps in order, on one page"""

    @classmethod
    def setUpClass(cls):
        (cls.base,) = env_required("EMILE_URL")
        cls.chromium = Browser()
        cls.page = cls.chromium.start().new_context(viewport={"width": 1500, "height": 1000}).new_page()
        cls.page.goto(cls.base + "#kitchen")
        cls.page.wait_for_function("() => document.querySelectorAll('#f-example option').length > 1")

    @classmethod
    def tearDownClass(cls):
        cls.chromium.stop()

    def test_1_example_hides_op(self):
        """a PyTorch example hides the op and its parameters"""
        page = self.page
        options = page.eval_on_selector_all("#f-example option", "os => os.map(o => [o.value, o.textContent])")
        values = [v for v, text in options if "softmax (PyTorch problem)" in text]
        self.assertTrue(values, "the softmax example is listed: %r" % options)
        page.select_option("#f-example", values[0])
        page.wait_for_function("() => document.querySelector('#f-ref').value.includes('class Model')")
        self.assertTrue(page.is_hidden("#f-op-row"))
        self.assertTrue(page.is_hidden("#f-params-box"))

    def test_2_error_at_its_line(self):
        """a problem whose get_inputs() raises: the error at its line, before any cook"""
        page = self.page
        page.fill("#f-ref", RAISES)
        page.click("#f-start")
        page.wait_for_function("() => /^line \\d+:/.test(document.querySelector('#f-problem').textContent)",
                               timeout=120000)
        self.assertRegex(page.text_content("#f-problem"),
                         r"^line 15: get_inputs\(\) raised ValueError: cannot draw \(64, 64\)")
        self.assertIn("error", page.get_attribute("#f-problem", "class"))
        selected = page.eval_on_selector("#f-ref", "ta => ta.value.slice(ta.selectionStart, ta.selectionEnd)")
        self.assertEqual(selected.strip(), 'raise ValueError(f"cannot draw {shape}")')
        self.assertNotRegex(page.text_content("#run-title"), r"^Run \d+")
        screenshot(page, "kitchen-problem-error.png")

    def test_3_good_problem_cooks(self):
        """a good problem is described, then cooks"""
        page = self.page
        page.fill("#f-ref", GOOD)
        page.fill("#f-iters", "0")
        page.fill("#f-name", "pasted PyTorch problem")
        page.click("#f-start")
        page.wait_for_function("() => /^Problem: op /.test(document.querySelector('#f-problem').textContent)",
                               timeout=120000)
        msg = page.text_content("#f-problem")
        self.assertIn("user-defined", msg)
        self.assertIn("x [2000, 512] f32", msg)
        self.assertIn("-> out1 [2000] f32", msg)
        self.assertIn("validation varies rows", msg)
        page.wait_for_function("() => /^Run \\d+/.test(document.querySelector('#run-title').textContent)",
                               timeout=120000)
        page.wait_for_selector('#iters tbody tr[data-iter="0"]', timeout=240000)


if __name__ == "__main__":
    unittest.main()
