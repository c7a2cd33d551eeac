#!/usr/bin/env bash
# The Debian package builds from this checkout (packaging/build-deb, the unit
# suite skipped: the suite under test runs it anyway) and holds what an
# installation needs: the four binaries (dfs is also what mount -t fuse.dfs
# runs, through mount.fuse3), the systemd template units, the sysusers entry,
# the example configuration and the man pages. Slow (a full build), so it
# runs alone. Uses DFS_SOURCE_DIR.
set -uo pipefail
out=$(mktemp -d /tmp/dfs-deb-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok - $what"; else echo "not ok - $what"; failures=$((failures + 1)); fi
}
echo "1..9"
# noopt (-O0): this test checks what the package holds and that it runs, not
# its speed, and -O0 shortens the longest build of the suite.
if ! DEB_BUILD_OPTIONS="nocheck noopt parallel=$(nproc)" timeout 1500 "$DFS_SOURCE_DIR/packaging/build-deb" "$out" > "$out/build.log" 2>&1; then
  tail -30 "$out/build.log" | sed 's/^/# /'
  echo "not ok - packaging/build-deb builds the package"
  exit 1
fi
echo "ok - packaging/build-deb builds the package"
deb=$(ls "$out"/dfs_*.deb 2>/dev/null | grep -v dbgsym | head -1)
contents=$(dpkg -c "$deb" 2>/dev/null)
has() { grep -qE " \./$1\$" <<<"$contents"; }
check "dpkg -c: usr/bin/dfs (what mount -t fuse.dfs runs)" has "usr/bin/dfs"
check "dpkg -c: usr/bin/dfs-meta, dfs-chunkserver, dfsctl, dfs-make-certs" bash -c "$(declare -f has); contents=\$(cat); has usr/bin/dfs-meta && has usr/bin/dfs-chunkserver && has usr/bin/dfsctl && has usr/bin/dfs-make-certs" <<<"$contents"
check "dpkg -c: the systemd template units" bash -c "$(declare -f has); contents=\$(cat); has 'lib/systemd/system/dfs-meta@\.service' && has 'lib/systemd/system/dfs-chunkserver@\.service'" <<<"$contents"
check "dpkg -c: example configuration" bash -c "grep -q 'usr/share/doc/dfs/examples/meta.conf' && true" <<<"$contents"
check "dpkg -c: man pages" bash -c "grep -q 'usr/share/man/man1/dfs.1' && true" <<<"$contents"
check "control: Package dfs" bash -c "[ \"\$(dpkg-deb -f '$deb' Package)\" = dfs ]"
check "control: depends on fuse3" bash -c "dpkg-deb -f '$deb' Depends | grep -q fuse3"
check "the binaries in the package run (--help)" bash -c "d=\$(mktemp -d) && dpkg-deb -x '$deb' \"\$d\" && \"\$d/usr/bin/dfsctl\" --help >/dev/null && \"\$d/usr/bin/dfs-meta\" --help >/dev/null; r=\$?; rm -rf \"\$d\"; exit \$r"
[ "$failures" -eq 0 ]
