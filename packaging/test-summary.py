#!/usr/bin/env python3
"""Prints "N passed, N failed, N skipped" for a finished `meson test` run.

Counts individual test cases: meson's JUnit log holds every case of every
gtest program (meson merges gtest's own report into it) and one case for any
other test. A program that meson saw fail (crash, timeout, non-zero exit) but
whose cases all passed, or that wrote no report, counts as one more failure,
so a crash is never hidden.

usage: test-summary.py BUILD_DIR/meson-logs
"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def main(log_dir):
    passed = failed = skipped = 0
    failed_by_program = {}
    root = ET.parse(os.path.join(log_dir, "testlog.junit.xml")).getroot()
    for suite in root.iter("testsuite"):
        program = suite.get("name", "")
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failed_by_program[program] = True
            elif case.find("skipped") is not None or case.get("result") == "skipped":
                skipped += 1
            else:
                passed += 1

    with open(os.path.join(log_dir, "testlog.json")) as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            if t.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
                continue
            prefix = "dfs." + t["name"]
            if not any(p == prefix or p.startswith(prefix + ".") for p in failed_by_program):
                failed += 1
                print(f"test-summary: {t['name']}: {t.get('result')} outside any test case", file=sys.stderr)

    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
