"""The PASS/FAIL lines of the Python-driven checks (tests/client, tests/install) and their closing
"N passed, M failed" line, the form scripts/test.sh's readers expect."""

results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(f"{'PASS' if condition else 'FAIL'} {name}{'' if condition else ': ' + detail}", flush=True)


def summary():
    """Prints the closing line; the exit status: 0 when there were checks and all passed."""
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed", flush=True)
    return 0 if results and all(results) else 1
