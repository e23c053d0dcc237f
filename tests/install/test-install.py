#!/usr/bin/env python3
"""`meson install` into a throw-away DESTDIR, then check what a line PC gets:
the programs, the man pages (rendered by man-db without a warning, station(1)
naming every command and subcommand), the udev rule, bash completion (run
for real), the documents, the example recipes and the sample station config.
TAP on stdout.  usage: test-install.py SOURCE_ROOT BUILD_ROOT"""
import json
import os
import re
import shutil
import stat
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "lib"))
from taptest import done, result, run  # noqa: E402 (tests/lib)

src, build = sys.argv[1], sys.argv[2]

tmp = tempfile.mkdtemp(prefix="station-install-")
dest = os.path.join(tmp, "dest")
try:
    r = run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild", "--quiet"])
    result(r.returncode == 0, "meson install --destdir", r.stdout + r.stderr)
    if r.returncode != 0:
        done()

    opts = {o["name"]: o["value"] for o in json.loads(run(["meson", "introspect", "--buildoptions", build]).stdout)}
    prefix = opts["prefix"]

    def d(path):  # an installed path under DESTDIR
        if not os.path.isabs(path):
            path = os.path.join(prefix, path)
        return dest + path

    bindir, mandir, datadir = opts["bindir"], opts["mandir"], opts["datadir"]
    docdir = os.path.join(datadir, "doc", "station")
    installed = json.loads(run(["meson", "introspect", "--installed", build]).stdout).values()
    rules = [p for p in installed if p.endswith("/rules.d/60-station-jig.rules")]
    result(len(rules) == 1, "the udev rule is installed into a rules.d", "\n".join(installed))
    expected = [
        os.path.join(bindir, "station"), os.path.join(bindir, "jigsim"), os.path.join(bindir, "station-registry"),
        os.path.join(mandir, "man1", "station.1"), os.path.join(mandir, "man1", "jigsim.1"),
        os.path.join(mandir, "man1", "station-registry.1"), os.path.join(mandir, "man5", "station-recipe.5"),
        os.path.join(mandir, "man5", "station-audit.5"),
        os.path.join(datadir, "bash-completion", "completions", "station"),
        os.path.join(datadir, "bash-completion", "completions", "station-registry"),
        os.path.join(docdir, "SCHEMA.md"), os.path.join(docdir, "FORMAT.md"), os.path.join(docdir, "PROTOCOL.md"),
        os.path.join(docdir, "examples", "demo.yaml"), os.path.join(docdir, "examples", "production-sensor.yaml"),
        "/etc/station/station.yaml",
    ] + rules
    for p in expected:
        result(os.path.isfile(d(p)) and os.path.getsize(d(p)) > 0, "installed: " + p)
    for p in ["station", "jigsim", "station-registry"]:
        mode = os.stat(d(os.path.join(bindir, p))).st_mode
        result(mode & stat.S_IXOTH != 0, f"{p} is executable by everyone")
    with open(os.path.join(src, "dist", "60-station-jig.rules")) as a, open(d(rules[0])) as b:
        result(a.read() == b.read(), "the installed udev rule is dist/60-station-jig.rules")

    station = d(os.path.join(bindir, "station"))
    r = run([station, "--version"])
    result(r.returncode == 0 and r.stdout.startswith("station "), "the installed station runs", r.stdout + r.stderr)

    # Man pages: rendered by man-db, no warning from groff or man.
    pages = {}
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="0")
    for sect, name in [("1", "station"), ("1", "jigsim"), ("1", "station-registry"), ("5", "station-recipe"),
                       ("5", "station-audit")]:
        path = d(os.path.join(mandir, "man" + sect, name + "." + sect))
        r = run(["man", "--warnings", "-E", "UTF-8", "-l", path], env=env)
        text = re.sub(r".\x08", "", r.stdout)
        pages[name] = text
        result(r.returncode == 0 and not r.stderr and text.startswith(name.upper() + "(" + sect + ")"),
               f"man -l {name}.{sect} renders without warnings", r.stderr or text[:400])
        result("\nNAME\n" in text and "\nDESCRIPTION\n" in text or "\nSYNOPSIS\n" in text,
               f"{name}.{sect} has NAME and DESCRIPTION/SYNOPSIS", text[:400])

    # station(1) documents every command and subcommand the program has.
    top = run([station, "--help"]).stdout
    commands = re.findall(r"^  ([a-z][a-z-]*) +\S", top, re.M)
    result(len(commands) >= 8, "station --help lists the commands", top)
    missing = []
    for c in commands:
        h = run([station, c, "--help"]).stdout
        subs = sorted(set(re.findall(r"station " + re.escape(c) + r" ([a-z][a-z-]*)", h)))
        for name in ["station " + c + (" " + s if s else "") for s in (subs or [""])]:
            if not re.search(r"^   " + re.escape(name) + r"\b", pages["station"], re.M):
                missing.append(name)
    result(not missing, "station(1) has a section for every command and subcommand",
           "missing (add them to docs/man/station.1): " + ", ".join(missing))
    heads = re.findall(r"^\.SS (station(?: [a-z][a-z-]*)+)", open(os.path.join(src, "docs", "man", "station.1")).read(),
                       re.M)
    twice = sorted({h for h in heads if heads.count(h) > 1})
    result(heads and not twice, "station(1) documents each command once", "sections written twice: " + ", ".join(twice))
    reg = d(os.path.join(bindir, "station-registry"))
    regcmds = re.findall(r"^  ([a-z][a-z-]*) +\S", run([reg, "--help"]).stdout, re.M)
    missing = [c for c in regcmds if not re.search(r"^   " + c + r"\b", pages["station-registry"], re.M)]
    result(regcmds and not missing, "station-registry(1) has a section for every command",
           "missing (add them to docs/man/station-registry.1): " + ", ".join(missing))
    with open(os.path.join(src, "recipes", "SCHEMA.md")) as f:
        sections = re.findall(r"^### `([a-z_]+)`", f.read(), re.M)
    missing = [s for s in sections if not re.search(r"^   " + s + r"\b", pages["station-recipe"], re.M)]
    result(len(sections) >= 8 and not missing, "station-recipe(5) has every recipe section", ", ".join(missing))

    # Help texts point at what is installed, not at the source tree.
    bad = []
    for c in commands:
        h = run([station, "help", c]).stdout
        for sub in set(re.findall(r"station " + re.escape(c) + r" ([a-z][a-z-]*)", h)):
            h += run([station, c, sub, "--help"]).stdout
        for ref in re.findall(r"[\w./-]+\.md\b", h):
            bad.append(f"station {c}: {ref}")
        for name, sect in re.findall(r"\b([a-z][a-z-]*)\(([15])\)", h + top):
            if not os.path.isfile(d(os.path.join(mandir, "man" + sect, name + "." + sect))):
                bad.append(f"station {c}: {name}({sect}) is not installed")
    result(not bad, "help texts name installed man pages, not source files", "\n".join(bad))

    # Bash completion, run for real against the installed programs.
    comp = d(os.path.join(datadir, "bash-completion", "completions", "station"))

    def complete(*words):
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _station; '
                  'printf "%s\\n" "${COMPREPLY[@]}"')
        r = run(["bash", "-c", script, "bash", comp] + list(words),
                env=dict(os.environ, PATH=d(bindir) + ":" + os.environ["PATH"]))
        return r.stdout.split(), r.stderr

    got, err = complete("station", "")
    result(set(commands) <= set(got) and not err, "completion: station <TAB> gives every command", f"{got} {err}")
    got, err = complete("station", "audit", "")
    result({"seal", "export", "verify"} <= set(got), "completion: station audit <TAB> gives its subcommands",
           f"{got} {err}")
    got, err = complete("station", "run", "--re")
    result(set(got) == {"--recipe", "--require-signed"}, "completion: station run --re<TAB>", f"{got} {err}")
    got, err = complete("station", "audit", "verify", "--")
    result("--ca" in got and "--recipe" not in got, "completion: options of a subcommand", f"{got} {err}")
    got, err = complete("station", "device", "--")
    result({"--recipe", "--dir", "--json"} <= set(got), "completion: station device --<TAB>", f"{got} {err}")
    got, err = complete("station", "device", "--dir", "")
    result("--json" not in got and not err, "completion: station device --dir <TAB> completes a folder",
           f"{got} {err}")
    got, err = complete("station", "revoke", "--reason", "key")
    result(got == ["keyCompromise"], "completion: revocation reasons", f"{got} {err}")
    got, err = complete("station-registry", "--db", "postgresql:///x", "")
    result({"ingest", "device", "alarms"} <= set(got), "completion: station-registry commands after --db",
           f"{got} {err}")

    # The sample station config is the defaults and loads; a reinstall keeps a
    # line's own settings.
    cfg = d("/etc/station/station.yaml")
    with open(cfg) as f:
        sample = f.read()
    result(oct(os.stat(cfg).st_mode & 0o777) == "0o644", "the sample config is mode 0644")
    recipe = d(os.path.join(docdir, "examples", "demo.yaml"))
    r = run([station, "recipe", "check", recipe, "--config", cfg])
    result(cfg not in r.stdout + r.stderr and "demo.yaml" in r.stdout + r.stderr,
           "the sample config loads without an error", r.stdout + r.stderr)
    with open(cfg, "w") as f:
        f.write(sample.replace("require_signed_recipes: false", "require_signed_recipes: yes"))
    r = run([station, "recipe", "check", recipe, "--config", cfg])
    result(cfg in r.stderr and r.returncode == 2, "a broken config is refused naming it (control)", r.stderr)
    r = run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild", "--quiet"])
    with open(cfg) as f:
        kept = f.read()
    result(r.returncode == 0 and "require_signed_recipes: yes" in kept,
           "meson install again keeps an existing /etc/station/station.yaml", r.stdout + r.stderr)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

done()
