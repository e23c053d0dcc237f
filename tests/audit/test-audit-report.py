#!/usr/bin/env python3
"""station audit report: a journal written by libaudit (tests/audit/audit-writer)
over two hours (faketime) by two operators, with failures, revocations and CRLs,
and strings a hostile jig could have put in an error message; sealed in SoftHSM,
exported, then reported as text and as HTML.  The HTML page is rendered by
headless Chromium: it loads without a console message or a refused resource, the
chart is in the DOM, nothing injected became markup; the screenshot is kept in
the build folder.  TAP on stdout.

usage: test-audit-report.py AUDIT_WRITER CHROMIUM FAKETIME ARTEFACT_DIR"""
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "lib"))
from taptest import done, result, run  # noqa: E402 (tests/lib)

writer, chromium, faketime, artefacts = sys.argv[1:5]
station = os.environ["STATION_EXE"]


def device(se, fail=None, error=None):
    out = []
    for step in ["identify", "posture", "auth", "keygen", "csr", "verify", "issuing", "issued", "install", "lock",
                 "done"]:
        if step == fail:
            out.append({"jig": "tcp:127.0.0.1:7700", "device": se, "step": step, "result": "fail",
                        "details": {"error": error, "action": "quarantine the device"}})
            return out
        details = {"cert_serial": "0C5F" + se[-4:]} if step == "issued" else {}
        out.append({"jig": "tcp:127.0.0.1:7700", "device": se, "step": step,
                    "result": "pass" if step == "done" else "ok", "details": details})
    return out


HOSTILE = "bad <script>alert(1)</script> \"q\" & 'a' <img src=http://evil.example/x.png> \x1b[31mred"

tmp = tempfile.mkdtemp(prefix="station-report-")
try:
    import json

    pki = os.path.join(tmp, "pki")
    r = run([os.environ["MAKE_TEST_PKI"], pki])
    result(r.returncode == 0, "test PKI", r.stdout + r.stderr)
    env = dict(os.environ)
    with open(os.path.join(pki, "env")) as f:
        for line in f:
            m = re.match(r"^(?:export )?([A-Z0-9_]+)=['\"]?([^'\"\n]*)['\"]?$", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    journal = os.path.join(tmp, "journal")
    recipe = "f8cfce9a91c9f907313e5afb6b0ed4503ca35785b467b3da36e0e32b6ace4b58"

    hour9 = device("SE-0000000000000001") + device("SE-0000000000000002") + \
        device("SE-0000000000000003", "verify", HOSTILE) + device("SE-0000000000000004")
    hour10 = device("SE-0000000000000005") + device("SE-0000000000000006", "keygen", "no answer after 5000 ms") + \
        device("SE-0000000000000007", "keygen", "no answer after 5000 ms") + device("SE-0000000000000008") + [
            {"device": "SE-0000000000000001", "step": "revoke", "result": "ok",
             "details": {"cert_serial": "0C5F0001", "reason": "keyCompromise", "revoked_by": "QA <lead>"}},
            {"step": "crl", "result": "ok", "details": {"crl_number": 1, "entries": 1, "sha256": "00" * 32,
                                                         "file": "line-a.crl"}},
            {"device": "SE-0000000000000002", "step": "revoke", "result": "ok",
             "details": {"cert_serial": "0C5F0002", "reason": "superseded", "authorized_by": "rework lead"}},
            {"step": "crl", "result": "ok", "details": {"crl_number": 2, "entries": 2, "sha256": "11" * 32,
                                                         "file": "line-a.crl"}},
        ]
    for when, who, events in [("2026-11-21 09:10:00", "Night Shift", hour9), ("2026-11-21 10:20:00", "Day Shift",
                                                                                hour10)]:
        r = run([faketime, "-f", "@" + when, writer, "--dir", journal, "--station", "line-a-1", "--operator", who,
                 "--recipe", recipe, "--batch-devices", "3"], env=env,
                stdin="".join(json.dumps(e) + "\n" for e in events))
        result(r.returncode == 0, f"audit-writer at {when}", r.stdout + r.stderr)
    r = run([station, "audit", "seal", "--dir", journal, "--token", "station-test", "--key-label", "audit", "--cert",
             os.path.join(pki, "audit.pem")], env=env)
    result(r.returncode == 0, "station audit seal", r.stdout + r.stderr)
    bundle = os.path.join(tmp, "bundle")
    r = run([station, "audit", "export", "--dir", journal, "--out", bundle, "--token", "station-test", "--key-label",
             "audit", "--cert", os.path.join(pki, "audit.pem")], env=env)
    result(r.returncode == 0, "station audit export", r.stdout + r.stderr)

    html = os.path.join(tmp, "report.html")
    root = os.path.join(pki, "root-ca.pem")
    r = run([station, "audit", "report", bundle, "--ca", root, "--html", html])
    text = r.stdout
    result(r.returncode == 0, "station audit report --ca --html: exit 0", r.stdout + r.stderr)
    result("verified: the hash chain, the manifest and" in text, "the text says the bundle verified", text)
    result(re.search(r"batch-000001\.jsonl .*sealed by .*Audit", text) is not None and "NOT SEALED" not in text,
           "every batch names its seal's signer", text)
    result(re.search(r"devices: 8 handled, 5 passed, 3 failed, 0 abandoned; yield 62\.5%", text) is not None,
           "devices and yield in total", text)
    result(re.search(r"2026-11-21T09:00 +passed 3 +failed 1 +abandoned 0 +yield 75\.0%", text) is not None and
           re.search(r"2026-11-21T10:00 +passed 2 +failed 2 +abandoned 0 +yield 50\.0%", text) is not None,
           "devices and yield per hour", text)
    result(re.search(r"^ +2 +keygen +no answer after 5000 ms$", text, re.M) is not None and
           re.search(r"^ +1 +verify +bad <script>", text, re.M) is not None, "failures by step and reason", text)
    result(re.search(r"device SE-0000000000000001 +certificate 0C5F0001 +keyCompromise +by QA <lead>", text) and
           re.search(r"device SE-0000000000000002 +certificate 0C5F0002 +superseded +by rework lead", text),
           "revocations with reason and who", text)
    result(re.search(r"CRL number 1 +1 entries +by Day Shift", text) and re.search(r"CRL number 2 +2 entries", text),
           "CRL numbers", text)
    result(re.search(r"^  Night Shift +\d+ records", text, re.M) and re.search(r"^  Day Shift +\d+ records", text,
                                                                                  re.M), "operators", text)
    result(recipe in text, "recipe digests", text)
    result("\x1b" not in text and "\\x1b[31mred" in text, "a control byte from the journal is escaped in the text")

    with open(html, encoding="utf-8") as f:
        page = f.read()
    refs = re.findall(r"<[^>]*\b(?:src|href)\s*=|url\(|@import|<script|<link|<iframe|<object|<embed|<img", page, re.I)
    result(not refs, "the page names no external resource and has no script", refs)
    result("&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=http://evil.example" in page
           and "\x1b" not in page, "hostile strings are escaped in the page")
    result("QA &lt;lead&gt;" in page, "revocation who is escaped")

    # Chromium, headless: console and network messages go to stderr.
    prof = os.path.join(tmp, "chromium-profile")
    shot = os.path.join(artefacts, "audit-report-screenshot.png")
    if os.path.exists(shot):
        os.unlink(shot)
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=" + prof, "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]
    r = run(base + ["--dump-dom", "file://" + html], timeout=90)
    dom = r.stdout
    console = [l for l in r.stderr.splitlines() if "CONSOLE" in l or "Refused" in l or "net::ERR" in l
               or "Uncaught" in l]
    result(r.returncode == 0 and "<h1>Audit report</h1>" in dom, "chromium loads the page", r.stderr[-3000:])
    result(not console, "no console message, refused or failed resource", "\n".join(console))
    svg = re.search(r'<svg id="devices-per-hour".*?</svg>', dom, re.S)
    result(svg is not None, "the chart is in the DOM", dom[:2000])
    if svg:
        bars = re.findall(r'<rect class="(passed|failed)"[^>]*height="([0-9.]+)"', svg.group(0))
        result(len(bars) == 4 and all(float(h) > 0 for _, h in bars), "two hours of passed and failed bars",
               svg.group(0)[:2000])
        result('<polyline id="yield"' in svg.group(0), "the yield line is drawn")
    result("<script" not in dom.lower() and "<img" not in dom.lower(), "nothing injected became an element")
    r = run(base + ["--screenshot=" + shot, "--window-size=1000,1600", "file://" + html], timeout=90)
    ok = r.returncode == 0 and os.path.isfile(shot)
    if ok:
        with open(shot, "rb") as f:
            ok = f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(shot) > 10000
    result(ok, "screenshot kept as " + shot, r.stderr[-2000:])

    # Without --ca the seals are not checked, and the report says so.
    r = run([station, "audit", "report", bundle])
    result(r.returncode == 0 and "seals NOT checked" in r.stdout, "without --ca: says the seals were not checked",
           r.stdout + r.stderr)
    # A bundle with an altered record: reported, FAILED, exit 1.
    bad = os.path.join(tmp, "bad")
    shutil.copytree(bundle, bad)
    p = os.path.join(bad, "batch-000001.jsonl")
    with open(p) as f:
        data = f.read()
    with open(p, "w") as f:
        f.write(data.replace("Night Shift", "Night Shifx", 1))
    r = run([station, "audit", "report", bad, "--ca", root])
    result(r.returncode == 1 and "FAILED verification: batch-000001.jsonl:" in r.stdout,
           "an altered bundle is reported as FAILED, exit 1", r.stdout + r.stderr)
    r = run([station, "audit", "report", os.path.join(tmp, "nothing-here")])
    result(r.returncode == 2 and "station audit report:" in r.stderr, "a missing bundle: exit 2 with the reason",
           r.stdout + r.stderr)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

done()
