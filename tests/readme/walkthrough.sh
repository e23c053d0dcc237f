#!/usr/bin/env bash
# The README walkthrough: every shell command README.md shows from "Trying the
# commands below" up to "A real HSM and a real jig", extracted from README.md
# itself and run in order, as printed, from a folder holding a fresh demo state
# (scripts/demo) and the build.  Then what README promises about certs/.
# Usage: walkthrough.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail
src=$1
build=$2
t=$(mktemp -d "${TMPDIR:-/tmp}/station-readme.XXXXXX")
jigsim=
cleanup() {
  if [ -n "$jigsim" ] && kill -0 "$jigsim" 2>/dev/null; then kill "$jigsim"; wait "$jigsim" 2>/dev/null || true; fi
  rm -rf "$t"
}
trap cleanup EXIT
fail() { echo "walkthrough: $*" >&2; exit 1; }

ln -s "$build" "$t/build"
DEMO_BUILD=$build DEMO_WORK=$t/work/demo DEMO_DEVICES=3 "$src/scripts/demo" >"$t/demo.log" 2>&1 ||
  { cat "$t/demo.log" >&2; fail "scripts/demo failed"; }

# The commands, in README order.
awk '/^\*\*Trying the commands below/ { on = 1 } /^## A real HSM/ { on = 0 }
     on && /^```sh$/ { code = 1; next } code && /^```$/ { code = 0; next } on && code { print }' \
  "$src/README.md" >"$t/commands.sh"
[ "$(grep -c '^station ' "$t/commands.sh")" -ge 10 ] || fail "README walkthrough commands not found"
grep -q 'station rework' "$t/commands.sh" || fail "no rework command in the README"

cd "$t"
n=0
while IFS= read -r -u 3 cmd; do
  n=$((n + 1))
  echo "+ $cmd"
  eval "$cmd" || fail "README command $n failed (exit $?): $cmd"
done 3<"$t/commands.sh"

# certs/ holds live certificates only: the revoked ones were moved aside.
[ ! -e "work/demo/audit/certs/$dev.pem" ] || fail "revoked certificate of $dev still in certs/"
ls work/demo/audit/certs/revoked/"$dev"-*.pem >/dev/null || fail "no certs/revoked/$dev-*.pem"
[ "$(ls work/demo/audit/certs/*.pem | wc -l)" -eq 2 ] || fail "expected 2 live certificates: $(ls work/demo/audit/certs)"
# A certificate revoked at the end of a run (read-back failed) is moved too.
rm -f work/demo/jig.uri
build/jig-protocol/jigsim/jigsim --pki work/demo/pki --devices 1 --fault readback-mismatch \
  --port-file work/demo/jig.uri >jigsim.log 2>&1 &
jigsim=$!
until [ -s work/demo/jig.uri ]; do sleep 0.1; done
rc=0
station run --recipe work/demo/demo.yaml --jig "$(cat work/demo/jig.uri)" --count 1 --operator demo >run.log 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat run.log >&2; fail "read-back failure run: exit $rc, expected 1"; }
grep -q "passed 0, failed 1, yield 0.0%; " run.log || { cat run.log >&2; fail "summary line of a one-device run"; }
! grep -q "devices/h" run.log || { cat run.log >&2; fail "a devices/h rate from a single device"; }
grep -qE "^station run: recipe demo-sensor [^ ]+ \(sha256 [0-9a-f]{64}\), Demo Sensor, station [^,]+, operator demo, 1 jig, --count 1$" run.log ||
  { cat run.log >&2; fail "no header line (recipe, digest, product, station, operator, jigs, --count)"; }
grep -q "^REVOKED  certificate [0-9A-F]* of SE[0-9A-F]* (cessationOfOperation): issued but never installed" run.log ||
  { cat run.log >&2; fail "no REVOKED line for the certificate revoked at the end of the run"; }
[ "$(ls work/demo/audit/certs/*.pem | wc -l)" -eq 2 ] || fail "the failed device's certificate is in certs/"
[ "$(ls work/demo/audit/certs/revoked/*.pem | wc -l)" -eq 3 ] || fail "expected 3 revoked: $(ls work/demo/audit/certs/revoked)"
echo "walkthrough: $n README commands ran"
