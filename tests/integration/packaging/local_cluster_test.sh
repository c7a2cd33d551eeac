#!/usr/bin/env bash
# packaging/local-cluster: up, status, refusing a second up, down (nothing
# left running), distinct ports for every member, and a failed start that
# stops what it had started.
# Uses: DFS_LOCAL_CLUSTER (the tool), DFS_BUILD_DIR (a meson build tree).
set -uo pipefail
tool=$DFS_LOCAL_CLUSTER
work=$(mktemp -d /tmp/dfs-lc-test.XXXXXX)
failures=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
cleanup() {
  for c in c p; do DFS_BUILD_DIR=$DFS_BUILD_DIR timeout 60 "$tool" down "$work/$c" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT

out=$(timeout 120 "$tool" up "$work/c" --meta 1 --chunkservers 2 --replicas 2 2>&1)
check "up succeeds and prints source=" grep -q '^source=127.0.0.1:' <<<"$out"
check "pid and log files per process" test -f "$work/c/meta-1.pid" -a -f "$work/c/cs-2.pid" -a -f "$work/c/cs-1.log"
check "chunkserver data under DIR/cs-K" test -d "$work/c/cs-1/chunks"
status=$("$tool" status "$work/c")
check "status lists each process running" test "$(grep -c running <<<"$status")" -eq 3
check "a second up over a running cluster is refused" bash -c "! timeout 60 '$tool' up '$work/c' >/dev/null 2>&1"
pids=$(cat "$work/c"/*.pid)
timeout 60 "$tool" down "$work/c" >/dev/null
sleep 0.2
left=0
for p in $pids; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
check "down stops every process" test "$left" -eq 0

# Three members need six ports. From a range of twelve with six reserved by
# other programs (files in /tmp/dfs-port-reservations, as the test harnesses
# and other clusters leave while their daemons start), each member must get a
# different one and none a reserved one (by chance: 1 in 924). The range is
# below the one other tests pick from (20000-32000), so nothing else takes them.
res=/tmp/dfs-port-reservations
mkdir -p "$res" && rm -f "$res"/1998[89] "$res"/1999[0-9]
for p in 19988 19989 19990 19991 19992 19993; do touch "$res/$p"; done
out=$(DFS_LOCAL_CLUSTER_PORTS=19988-19999 timeout 120 "$tool" up "$work/p" --meta 3 --chunkservers 1 --replicas 1 2>&1)
check "three members get six ports" grep -q '^source=' <<<"$out"
ports=$(cat "$work/p"/meta-*.port "$work/p"/meta-*.raft)
check "no port given twice" test "$(sort -u <<<"$ports" | wc -l)" -eq 6
check "no member got a reserved port" test "$(sort -u <<<"$ports" | tr '\n' ' ')" = "19994 19995 19996 19997 19998 19999 "
check "reservations end once the members are bound" test "$(ls "$res" | grep -c '^1999[4-9]$')" -eq 0
rm -f "$res"/1998[89] "$res"/1999[0-3]
timeout 60 "$tool" down "$work/p" >/dev/null 2>&1

# A start that fails half-way: chunkservers that cannot start.
mkdir -p "$work/fake/meta" "$work/fake/chunkserver"
ln -s "$DFS_BUILD_DIR/meta/dfs-meta" "$work/fake/meta/dfs-meta"
printf '#!/bin/sh\necho "broken chunkserver" >&2\nexit 1\n' > "$work/fake/chunkserver/dfs-chunkserver"
chmod +x "$work/fake/chunkserver/dfs-chunkserver"
check "a failed start fails" bash -c "! DFS_BUILD_DIR='$work/fake' timeout 60 '$tool' up '$work/f' >/dev/null 2>&1"
sleep 0.2
check "the failed start did start meta first" grep -q "listening on" "$work/f/meta-1.log"
nothing_left() { ! pgrep -f "$work/f/" >/dev/null; }  # pgrep never matches itself
check "a failed start leaves nothing running" nothing_left

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
