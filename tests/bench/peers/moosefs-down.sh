#!/usr/bin/env bash
# Adapted from ../shared/peers/ (the team's reference): compare-bench sets PEER_ROOT,
# MNT, GOAL and MFS_NETNS so a run keeps everything under its own temp folder.
# moosefs-down.sh — stop the loopback MooseFS peer started by moosefs-up.sh.
#   --purge : also delete all its data/metadata (next moosefs-up.sh starts an empty fs).
# Stops only the daemons started with our generated config files (each daemon's own
# "stop" action, which uses its lock file / PID), never by process name.
set -uo pipefail
PEER_ROOT=${PEER_ROOT:-/tmp/peer/moosefs}
MNT=${MNT:-/tmp/peer/mnt/moosefs}
NCS=3
NETNS=${MFS_NETNS:-peer-moosefs}
NS="nsenter --net=/run/netns/$NETNS"
[ -e "/run/netns/$NETNS" ] || NS=""

if mountpoint -q "$MNT" 2>/dev/null || grep -q " $MNT fuse" /proc/mounts; then
  umount "$MNT" 2>/dev/null || umount -l "$MNT"
fi
for i in $(seq 1 $NCS); do
  cfg=$PEER_ROOT/etc/mfschunkserver-$i.cfg
  [ -f "$cfg" ] && $NS mfschunkserver -c "$cfg" stop >/dev/null 2>&1
done
[ -f "$PEER_ROOT/etc/mfsmetalogger.cfg" ] && $NS mfsmetalogger -c "$PEER_ROOT/etc/mfsmetalogger.cfg" stop >/dev/null 2>&1
[ -f "$PEER_ROOT/etc/mfsmaster.cfg" ] && $NS mfsmaster -c "$PEER_ROOT/etc/mfsmaster.cfg" stop >/dev/null 2>&1
if [ "${1:-}" = "--purge" ]; then
  [ -e "/run/netns/$NETNS" ] && ip netns del "$NETNS"
  case "$PEER_ROOT" in /tmp/*) rm -rf "$PEER_ROOT" ;; *) echo "refusing to purge $PEER_ROOT (not under /tmp)" >&2 ;; esac
fi
echo "[moosefs-down] stopped" >&2
exit 0
