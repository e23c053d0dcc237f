#!/usr/bin/env bash
# The operator's screen, as a terminal shows it: `station run` in tmux at
# 80x24 with two jigsims, the second one faulty (every second device fails
# VERIFY), the first one with a noisy line (a reply retransmitted).  While it runs and when it has ended, the captured screen must
# have no line wider than the terminal, no stale piece of the status block
# (one header, one status line per jig, one totals line at most), the
# header, PASS and FAIL lines and the per-jig summary.  Then a second run,
# resized to 64 columns while it runs: the block is redrawn to the new
# width (SIGWINCH).  (Not checked there: stale pieces.  A terminal reads the
# program's output when it gets to it, and a redraw written for the old width
# but read after the terminal rewrapped its lines leaves a piece behind.)
# Usage: tmux-screen.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail
src=$1
build=$2
t=$(mktemp -d "${TMPDIR:-/tmp}/station-tmux.XXXXXX")
sock="station-ui-$$"
pids=()
cleanup() {
  if [ -s "$t/station.pid" ]; then
    kill "$(cat "$t/station.pid")" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$(cat "$t/station.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  tmux -L "$sock" kill-server 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$t"
}
trap cleanup EXIT
fail() {
  echo "tmux-screen: $*" >&2
  [ -f "$t/screen" ] && { echo "--- the screen:" >&2; cat "$t/screen" >&2; }
  exit 1
}
export TMUX_TMPDIR=$t # the tmux server's socket, ours alone
unset TMUX

"${MAKE_TEST_PKI:-$src/fixtures/make-test-pki}" "$t/pki" >"$t/pki.log" 2>&1 || { cat "$t/pki.log" >&2; fail "make-test-pki"; }
mkdir "$t/w"
ln -s "$t/pki" "$t/w/pki"
cp "$src/recipes/examples/demo.yaml" "$t/w/demo.yaml"

jigsim=$build/jig-protocol/jigsim/jigsim
# The first jig's line damages every third device's first KEYGEN reply: the
# retransmission repairs it, and the PASS line says it took a retry.
"$jigsim" --pki "$t/pki" --devices 0 --id 1 --keygen-ms 800 --fault corrupt-byte --fault-every 3 \
  --port-file "$t/a.uri" >"$t/a.log" 2>&1 &
pids+=($!)
"$jigsim" --pki "$t/pki" --devices 0 --id 2 --keygen-ms 800 --fault replay-nonce --fault-every 2 \
  --port-file "$t/b.uri" >"$t/b.log" 2>&1 &
pids+=($!)
for f in a b; do
  for _ in $(seq 100); do [ -s "$t/$f.uri" ] && break; sleep 0.1; done
  [ -s "$t/$f.uri" ] || fail "jigsim $f did not start"
done
a=$(cat "$t/a.uri")
b=$(cat "$t/b.uri")
count=16

cat >"$t/run" <<RUN
#!/bin/sh
cd '$t/w'
SOFTHSM2_CONF='$t/pki/softhsm2.conf' STATION_HSM_PIN=123456 TERM=tmux-256color \
  '$build/station/station' run --recipe demo.yaml --jig '$a' --jig '$b' --count $count --operator tmux-test &
echo \$! >'$t/station.pid'
wait \$!
echo "EXIT \$?"
exec sleep 600
RUN
chmod +x "$t/run"
tmux -L "$sock" -f /dev/null new-session -d -s ui -x 80 -y 24 "$t/run"

# One capture of the visible screen, wrapped lines joined: a line the
# program printed wider than the terminal shows wider than it here.
capture() { tmux -L "$sock" capture-pane -p -J -t ui >"$t/screen"; }

# The screen as it should be at width $1.
check_screen() {
  local width=$1
  awk -v w="$width" -v a="$a" -v b="$b" '
    length($0) > w { printf "line %d is %d columns wide, the terminal %d: %s\n", NR, length($0), w, $0; bad = 1 }
    /^  demo-sensor / { header++ }
    index($0, "  " a "  ") == 1 && $0 !~ /passed [0-9]+, failed/ { ja++ }
    index($0, "  " b "  ") == 1 && $0 !~ /passed [0-9]+, failed/ { jb++ }
    /^  [0-9]+\/[0-9]+  passed [0-9]+  failed [0-9]+/ { totals++ }
    END {
      if (header > 1 || ja > 1 || jb > 1 || totals > 1) {
        printf "stale status lines: %d headers, %d and %d jig lines, %d totals lines\n", header, ja, jb, totals; bad = 1
      }
      exit bad
    }' "$t/screen"
}

# While it runs, at 80 columns: the whole block, every time it is looked at.
seen_block=0
for _ in $(seq 60); do
  capture
  grep -q '^EXIT ' "$t/screen" && break
  why=$(check_screen 80) || fail "while running at 80x24: $why"
  if grep -q '^  demo-sensor 1\.0\.0 \[[0-9a-f]\{8\}\]  Demo Sensor  station ' "$t/screen" &&
     grep -q "^  [0-9]*/$count  passed [0-9]*  failed [0-9]*" "$t/screen" &&
     grep -qF "  $a  SE" "$t/screen" && grep -qF "  $b  SE" "$t/screen"; then
    seen_block=$((seen_block + 1))
  fi
  [ "$seen_block" -ge 3 ] && break
  sleep 0.2
done
[ "$seen_block" -ge 3 ] || fail "no status block (header, one line per jig with a device, n/$count totals) while running"

for _ in $(seq 150); do
  capture
  grep -q '^EXIT ' "$t/screen" && break
  sleep 0.2
done
grep -q '^EXIT 1$' "$t/screen" || fail "station run did not end with exit 1 (a device failed)"
check_screen 80 >/dev/null || fail "the last screen: $(check_screen 80 || true)"
# The block is gone at the end: no header or totals line is left.
! grep -qE "^  demo-sensor |^  [0-9]+/$count  passed " "$t/screen" || fail "a status line was left on the last screen"

# The whole output (scrollback too): not one piece of the status block was
# left behind; PASS and FAIL lines of both jigs, the per-jig summary naming
# the faulty jig's failures by step, the last line.
tmux -L "$sock" capture-pane -p -J -S - -t ui >"$t/screen"
! grep -qE "^  demo-sensor |^  [0-9]+/$count  passed |^  (${a//./\\.}|${b//./\\.})  (SE|-)" "$t/screen" ||
  fail "status lines left in the output: $(grep -E "^  demo-sensor |^  [0-9]+/$count  passed " "$t/screen" | head -3)"
grep -qE "^$a  PASS  SE[0-9A-F]+  [0-9.]+s  cert [0-9A-F]" "$t/screen" || fail "no PASS line of jig $a"
grep -qE "^$b  PASS  SE[0-9A-F]+  " "$t/screen" || fail "no PASS line of jig $b"
grep -qE "^$a  PASS  SE[0-9A-F]+  [0-9.]+s \(1 retry\)  cert " "$t/screen" || fail "no PASS line of jig $a saying (1 retry)"
! grep -qE "^$b  PASS  .*retr" "$t/screen" || fail "a retry on jig $b, whose line is good"
grep -qE "^$b  FAIL  SE[0-9A-F]+  at VERIFY: " "$t/screen" || fail "no FAIL line of jig $b"
! grep -qE "^$a  FAIL" "$t/screen" || fail "a FAIL line of the good jig $a"
grep -qE "^ +-> quarantine the device" "$t/screen" || fail "no advice under the FAIL line"
passed_a=$(grep -cE "^$a  PASS  " "$t/screen")
failed_b=$(grep -cE "^$b  FAIL  " "$t/screen")
passed_b=$(grep -cE "^$b  PASS  " "$t/screen")
grep -qxF "  $a  passed $passed_a, failed 0" "$t/screen" || fail "no summary line for jig $a (passed $passed_a, failed 0)"
grep -qxF "  $b  passed $passed_b, failed $failed_b: VERIFY $failed_b" "$t/screen" ||
  fail "no summary line for jig $b (passed $passed_b, failed $failed_b: VERIFY $failed_b)"
[ $((passed_a + passed_b + failed_b)) -eq "$count" ] || fail "$passed_a + $passed_b + $failed_b devices, not $count"
grep -qE "^RUN FINISHED WITH FAILURES  passed $((passed_a + passed_b)), failed $failed_b, yield [0-9.]+%" "$t/screen" ||
  fail "no last line"

# The second run, narrowed mid-run: the block follows (SIGWINCH).
tmux -L "$sock" kill-server 2>/dev/null || true
rm -f "$t/station.pid"
sed -i "s/--count $count/--count 6/" "$t/run"
tmux -L "$sock" -f /dev/null new-session -d -s ui -x 80 -y 24 "$t/run"
for _ in $(seq 100); do
  capture
  grep -q '^  demo-sensor ' "$t/screen" && break
  sleep 0.1
done
tmux -L "$sock" resize-window -t ui -x 64 -y 24
resized=0
for _ in $(seq 40); do
  sleep 0.3
  capture
  grep -q '^EXIT ' "$t/screen" && break
  # Only the block is redrawn to the new width: lines printed before the
  # resize were up to 79 columns.
  block=$(grep -E "^  demo-sensor |^  [0-9]+/6  passed |^  (${a//./\\.}|${b//./\\.})  (SE|-)" "$t/screen" | tail -n 4 || true)
  if [ -n "$block" ] && grep -q '^  demo-sensor ' <<<"$block"; then
    awk 'length($0) > 63 { exit 1 }' <<<"$block" ||
      fail "after the resize to 64 columns, the status block is wider: $(awk 'length($0) > 63' <<<"$block")"
    resized=$((resized + 1))
  fi
  [ "$resized" -ge 2 ] && break
done
[ "$resized" -ge 2 ] || fail "no status block redrawn after the resize to 64 columns"
echo "tmux-screen: ok ($passed_a + $passed_b passed, $failed_b failed; redrawn at 64 columns)"
