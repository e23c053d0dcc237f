"""TAP for the Python test scripts (tests/*/test-*.py): one "ok N - what" or
"not ok N - what" line per check, the plan at the end, and a runner that
captures a command's output as text.

    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "lib"))
    from taptest import done, result, run"""
import subprocess
import sys

_count = 0
_failed = 0


def result(ok, desc, detail=""):
    """One check; when it failed, up to 60 lines of detail as TAP comments."""
    global _count, _failed
    _count += 1
    if not ok:
        _failed += 1
    print(("ok" if ok else "not ok") + f" {_count} - {desc}")
    if not ok and detail:
        for line in str(detail).rstrip().splitlines()[:60]:
            print("# " + line)
    sys.stdout.flush()


def run(cmd, stdin=None, timeout=120, **kw):
    """Run cmd with stdout and stderr captured as text; stdin: text to feed it."""
    return subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=timeout, **kw)


def done():
    """Print the plan and exit: 1 when a check failed."""
    print(f"1..{_count}")
    sys.exit(1 if _failed else 0)
