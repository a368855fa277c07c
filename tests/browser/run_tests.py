"""run_tests.py -- runs the browser tests (token_test, kitchen_test, problem_test) and
writes what failed, one short block per test, to the file named by
--failures, so that tests/browser/run.sh can print it last: a log cut to its
tail still says which step failed, where, and why.

    build/venv/bin/python3 tests/browser/run_tests.py [--failures FILE] [MODULE...]

Exit status 0 when every test passed, 1 otherwise.  Normally started by
tests/browser/run.sh, which starts the servers and sets the environment."""

import argparse
import os
import sys
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = ["token_test", "kitchen_test", "problem_test"]
MESSAGE_LINES = 24       # of each failure's message (Playwright's call logs are long)


class KeptResult(unittest.TextTestResult):
    """A TextTestResult that also keeps each failure's exception."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kept = []       # (kind, test, exc_info)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.kept.append(("FAIL", test, err))

    def addError(self, test, err):
        super().addError(test, err)
        self.kept.append(("ERROR", test, err))


def where(tb):
    """file:line of the innermost frame in a test file of this folder."""
    at = ""
    for frame in traceback.extract_tb(tb):
        if os.path.dirname(os.path.abspath(frame.filename)) == HERE:
            at = "%s:%d" % (os.path.basename(frame.filename), frame.lineno)
    return at


def summary(kept):
    out = []
    for kind, test, (etype, value, tb) in kept:
        doc = test.shortDescription() if isinstance(test, unittest.TestCase) else None
        name = "%s (%s)" % (doc, test.id()) if doc else str(test)
        out.append("%s: %s%s" % (kind, name, ", at " + where(tb) if where(tb) else ""))
        lines = traceback.format_exception_only(etype, value)
        lines = "".join(lines).rstrip("\n").split("\n")
        if len(lines) > MESSAGE_LINES:
            lines = lines[:MESSAGE_LINES] + ["... (%d more lines)" % (len(lines) - MESSAGE_LINES)]
        out.extend("    " + line for line in lines)
    return "\n".join(out) + "\n" if out else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--failures", help="write the failed tests and their messages here")
    ap.add_argument("modules", nargs="*", default=MODULES)
    args = ap.parse_args()
    sys.dont_write_bytecode = True      # no __pycache__ in the source tree
    sys.path.insert(0, HERE)
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromName(m) for m in args.modules)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=KeptResult)
    result = runner.run(suite)
    if args.failures:
        with open(args.failures, "w", encoding="utf-8") as f:
            f.write(summary(result.kept))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
