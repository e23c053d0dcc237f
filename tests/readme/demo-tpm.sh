#!/usr/bin/env bash
# `scripts/demo tpm`, as README.md tells a reader to run it, on the build
# under test (DEMO_BUILD) in a throw-away folder: three TPM devices must pass,
# and the commands it prints to check one of them (openssl verify of both
# certificates, the IDevID certificate's key against the TPM's own) must
# work as printed.
# Usage: demo-tpm.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail
src=$1
build=$2
t=$(mktemp -d "${TMPDIR:-/tmp}/station-demo-tpm.XXXXXX")
trap 'rm -rf "$t"' EXIT
fail() { echo "demo-tpm: $*" >&2; exit 1; }

# shellcheck disable=SC2016 # the backquotes are README text
grep -q '^`scripts/demo tpm` provisions three software TPMs' "$src/README.md" || fail "README.md no longer shows scripts/demo tpm"
DEMO_BUILD=$build DEMO_WORK=$t/demo-tpm "$src/scripts/demo" tpm >"$t/demo.log" 2>&1 ||
  { cat "$t/demo.log" >&2; fail "scripts/demo tpm failed"; }
cat "$t/demo.log"
grep -q "passed 3, failed 0" "$t/demo.log" || fail "not all three TPM devices passed"
grep -q -- "-> same key" "$t/demo.log" || fail "the IDevID certificate's key is not the TPM's"

# The check commands it printed (the tpm2-tools one needs its swtpm, gone
# now: the demo ran it itself), joined where a line ends in a backslash.
awk '/^  openssl / { cmd = $0; while (cmd ~ /\\$/ && (getline more) > 0) { sub(/\\$/, "", cmd); cmd = cmd more } print cmd }' \
  "$t/demo.log" >"$t/checks.sh"
[ "$(wc -l <"$t/checks.sh")" -eq 2 ] || { cat "$t/checks.sh" >&2; fail "expected 2 printed openssl commands"; }
n=0
while IFS= read -r -u 3 cmd; do
  n=$((n + 1))
  echo "+ $cmd"
  out=$(eval "$cmd" 2>&1) || fail "printed command $n failed: $cmd: $out"
  echo "$out"
  case $cmd in
  *"openssl verify"*) [ "$(grep -c ': OK$' <<<"$out")" -eq 2 ] || fail "openssl verify did not pass both certificates" ;;
  esac
done 3<"$t/checks.sh"
echo "demo-tpm: 3 devices passed, $n printed commands ran"
