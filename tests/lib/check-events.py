#!/usr/bin/env python3
"""Validate station --json lines against docs/events.schema.json.

Usage: check-events.py SCHEMA FILE...  Every line of every FILE must be one
JSON object valid against the schema; the first line of each run is
run_started and the last summary (files hold runs one after another),
unless the file's name ends in .killed.jsonl (a run killed by a signal).
Prints FILE:LINE: why for each bad line; exit 1 if any."""
import json
import sys

import jsonschema


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    bad = 0
    for path in sys.argv[2:]:
        prev = None
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                where = "%s:%d" % (path, no)
                try:
                    ev = json.loads(line)
                except ValueError as e:
                    print("%s: not JSON (%s): %s" % (where, e, line.rstrip()[:200]))
                    bad += 1
                    continue
                errors = sorted(validator.iter_errors(ev), key=lambda e: e.path)
                if errors:
                    # oneOf hides the reason: say it for the event's own definition
                    kind = ev.get("event") if isinstance(ev, dict) else None
                    sub = schema["$defs"].get("ev_%s" % kind)
                    detail = [e.message for e in cls(sub, resolver=validator.resolver).iter_errors(ev)] if sub else []
                    print("%s: %s: %s" % (where, "; ".join(detail) or errors[0].message, line.rstrip()[:300]))
                    bad += 1
                kind = ev.get("event") if isinstance(ev, dict) else None
                if (prev is None or prev == "summary") and kind != "run_started":
                    print("%s: a run begins with %s, not run_started" % (where, kind))
                    bad += 1
                prev = kind
        if prev is not None and prev != "summary" and not path.endswith(".killed.jsonl"):
            print("%s: the last event is %s, not summary" % (path, prev))
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
