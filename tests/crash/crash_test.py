#!/usr/bin/env python3
"""Crash consistency: what fsync (or close) acknowledged survives any crash.

A writer creates, appends to, overwrites, truncates, renames and unlinks
files on a mount of a 3-meta, 3-chunkserver local cluster (R=3). After each
fsync or close it records the file's acknowledged state (name and bytes) in
memory, outside the mount. Meanwhile, at a random moment of each round, the
driver kills with kill -9 one of: a chunkserver, the meta leader, a meta
follower, or the dfs client daemon itself (then lazily unmounts and mounts
again). After each round the killed process is restarted and every
acknowledged file is read back through a fresh second mount (a cold cache):
byte-identical content, right size, right name, and no acknowledged name
missing. The cluster must be healthy again (a leader, every member and
chunkserver up) before the next round.

An operation that fails (the client was killed under it) leaves its file
"uncertain": it may hold the old or the new state, so it is not checked
and is deleted and rewritten from scratch once the mount is back.

Seeded and bounded:  crash_test.py [--seed N] [--rounds N] [--minutes M]
CI runs a short version; `--rounds 1000 --minutes 60` is the soak mode.
Every failure prints the seed and the round's kill sequence to reproduce.
Output is TAP, one line per round. Uses DFS_BUILD_DIR and DFS_LOCAL_CLUSTER.
"""

import argparse
import errno
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("DFS_BUILD_DIR", "build")
TOOL = os.environ.get("DFS_LOCAL_CLUSTER", os.path.join(os.path.dirname(__file__), "..", "..", "packaging", "local-cluster"))
DFS = os.path.join(BUILD, "fuse", "dfs")
CTL = os.path.join(BUILD, "ctl", "dfsctl")
KINDS = ["chunkserver", "meta-leader", "meta-follower", "client"]


def run(cmd, timeout=120, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                       env=dict(os.environ, DFS_BUILD_DIR=BUILD))
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stdout[-2000:]))
    return r.stdout


def pid_of(cluster, name):
    try:
        with open(os.path.join(cluster, name + ".pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def alive(pid):
    if pid <= 0:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cluster_status(source):
    out = run([CTL, "--meta", source, "--timeout", "5s", "status", "--json"], timeout=30, check=False)
    try:
        return json.loads(out)
    except ValueError:
        return None


def wait_dead(pid, timeout_s=10):
    """kill(2) returns before the process has exited."""
    end = time.time() + timeout_s
    while alive(pid) and time.time() < end:
        time.sleep(0.01)


def wait_healthy(source, cluster, deadline_s=60):
    """Every process running, a leader, 3 members none unreachable, 3 chunkservers up,
    and every chunk back to its 3 copies (no repair pending): full health, so a
    round's single kill never leaves a chunk with fewer than W live copies."""
    end = time.time() + deadline_s
    last = None
    while time.time() < end:
        down = [n for n in ("meta-1", "meta-2", "meta-3", "cs-1", "cs-2", "cs-3") if not alive(pid_of(cluster, n))]
        if down:
            last = "not running: %s" % down
            time.sleep(0.2)
            continue
        st = cluster_status(source)
        last = st
        if st and st.get("leader_id"):
            members = st.get("members", [])
            up = [n for n in st.get("chunkservers", []) if n.get("state") == "up"]
            if (len(members) == 3 and all(m.get("role") in ("leader", "follower") for m in members) and
                    len(up) == 3 and st.get("under_replicated_chunks") == 0 and st.get("repairs_in_flight") == 0):
                return st
        time.sleep(0.2)
    raise RuntimeError("cluster not healthy after %ds: %s\n%s" % (deadline_s, last, placement_log(cluster)))


def placement_log(cluster, lines=15):
    """The last repair/copy lines of every daemon's log: CI shows only this
    test's output, and an unhealthy cluster is usually a copy that never ended."""
    out = []
    for name in ("meta-1", "meta-2", "meta-3", "cs-1", "cs-2", "cs-3"):
        try:
            with open(os.path.join(cluster, name + ".log"), errors="replace") as f:
                hits = [l.rstrip() for l in f if any(w in l for w in ("repair", "copy", "replicat", "dead", "registered"))]
        except OSError:
            continue
        out += ["#   %s: %s" % (name, l) for l in hits[-lines:]]
    return "\n".join(out)


def mount(source, path, log):
    os.makedirs(path, exist_ok=True)
    run([DFS, source, path, "-o", "log_file=%s" % log], timeout=60)


def unmount(path):
    subprocess.run(["fusermount3", "-uz", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Writer:
    """The application: random operations with fsync, a model of what was acknowledged."""

    def __init__(self, rng, mnt):
        self.rng = rng
        self.mnt = mnt
        self.acked = {}       # name -> bytes, acknowledged (fsync/close returned 0)
        self.uncertain = set()  # names whose state is unknown after a failed op
        self.next_id = 0

    def path(self, name):
        return os.path.join(self.mnt, name)

    def data(self, n):
        return self.rng.randbytes(n)

    def one_op(self):
        """Runs one random operation; returns a description. Raises OSError on failure."""
        names = sorted(self.acked)
        op = self.rng.choice(["create"] * 3 + ["append", "overwrite", "truncate", "rename", "unlink"] if names
                             else ["create"])
        if op == "create" or not names:
            name = "f%d" % self.next_id
            self.next_id += 1
            # Files of 1 MiB and more: later appends and overwrites are
            # committed as deltas applied onto the chunkservers' base copies.
            body = self.data(self.rng.choice([0, 1, 100, 4096, 65536 + 17, 300000, (1 << 20) + 5, (3 << 20) + 3]))
            self.uncertain.add(name)
            fd = os.open(self.path(name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            try:
                os.write(fd, body)
                if self.rng.random() < 0.5:
                    os.fsync(fd)
            finally:
                os.close(fd)  # close is durable too
            self.acked[name] = body
            self.uncertain.discard(name)
            return "create %s %d" % (name, len(body))
        name = self.rng.choice(names)
        old = self.acked[name]
        if op == "append":
            extra = self.data(self.rng.choice([1, 10, 5000, 70000]))
            self.uncertain.add(name)
            del self.acked[name]
            fd = os.open(self.path(name), os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, extra)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.acked[name] = old + extra
            self.uncertain.discard(name)
            return "append %s +%d" % (name, len(extra))
        if op == "overwrite":
            off = self.rng.randrange(0, len(old) + 1)
            patch = self.data(self.rng.choice([1, 512, 8192, 100000, 400001]))
            self.uncertain.add(name)
            del self.acked[name]
            fd = os.open(self.path(name), os.O_WRONLY)
            try:
                os.pwrite(fd, patch, off)
                os.fsync(fd)
            finally:
                os.close(fd)
            new = bytearray(old)
            if off + len(patch) > len(new):
                new.extend(b"\0" * (off + len(patch) - len(new)))
            new[off:off + len(patch)] = patch
            self.acked[name] = bytes(new)
            self.uncertain.discard(name)
            return "overwrite %s @%d +%d" % (name, off, len(patch))
        if op == "truncate":
            size = self.rng.choice([0, len(old) // 2, len(old) + 1000])
            self.uncertain.add(name)
            del self.acked[name]
            fd = os.open(self.path(name), os.O_WRONLY)
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.acked[name] = old[:size] + b"\0" * max(0, size - len(old))
            self.uncertain.discard(name)
            return "truncate %s %d" % (name, size)
        if op == "rename":
            new_name = "f%d" % self.next_id
            self.next_id += 1
            self.uncertain.update([name, new_name])
            del self.acked[name]
            os.rename(self.path(name), self.path(new_name))
            self.acked[new_name] = old
            self.uncertain.difference_update([name, new_name])
            return "rename %s %s" % (name, new_name)
        self.uncertain.add(name)
        del self.acked[name]
        os.unlink(self.path(name))
        self.uncertain.discard(name)
        return "unlink %s" % name

    def clean_uncertain(self):
        """After recovery: remove every name whose state is unknown."""
        for name in sorted(self.uncertain):
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass
        self.uncertain.clear()


def verify(writer, check_mnt):
    """Every acknowledged file through a cold mount; returns a list of problems."""
    problems = []
    try:
        listed = set(os.listdir(check_mnt))
    except OSError as e:
        return ["cannot list the check mount: %s" % e]
    for name, want in sorted(writer.acked.items()):
        if name not in listed:
            problems.append("%s: acknowledged but missing from the directory" % name)
            continue
        try:
            with open(os.path.join(check_mnt, name), "rb") as f:
                got = f.read()
        except OSError as e:
            problems.append("%s: read failed: %s" % (name, e))
            continue
        if len(got) != len(want):
            problems.append("%s: size %d, acknowledged %d" % (name, len(got), len(want)))
        elif got != want:
            first = next(i for i in range(len(got)) if got[i] != want[i])
            problems.append("%s: content differs from byte %d" % (name, first))
    extra = listed - set(writer.acked) - writer.uncertain
    if extra:
        problems.append("names that were never acknowledged (or were unlinked): %s" % sorted(extra)[:10])
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--ops-per-round", type=int, default=30)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    print("# seed %d (reproduce: %s --seed %d --rounds %d)" % (seed, sys.argv[0], seed, args.rounds), flush=True)
    print("1..%d" % args.rounds, flush=True)

    work = tempfile.mkdtemp(prefix="dfs-crash-")
    cluster = os.path.join(work, "c")
    mnt = os.path.join(work, "mnt")
    check_mnt = os.path.join(work, "check")
    failures = 0
    history = []
    try:
        out = run([TOOL, "up", cluster, "--meta", "3", "--chunkservers", "3", "--replicas", "3", "--mount", mnt],
                  timeout=180)
        source = [l.split("=", 1)[1] for l in out.splitlines() if l.startswith("source=")][0]
        writer = Writer(rng, mnt)
        deadline = time.time() + args.minutes * 60
        for round_no in range(1, args.rounds + 1):
            if time.time() > deadline:
                print("ok %d - # SKIP time budget spent" % round_no, flush=True)
                continue
            kind = KINDS[(round_no - 1) % len(KINDS)] if round_no <= len(KINDS) else rng.choice(KINDS)
            st = wait_healthy(source, cluster)
            leader = st["leader_id"]
            if kind == "chunkserver":
                victim = "cs-%d" % rng.randint(1, 3)
            elif kind == "meta-leader":
                victim = "meta-%d" % leader
            elif kind == "meta-follower":
                victim = "meta-%d" % rng.choice([m["id"] for m in st["members"] if m["id"] != leader])
            else:
                victim = "dfs"
            delay = rng.uniform(0.1, 1.5)
            events = []
            killed = threading.Event()

            def killer():
                time.sleep(delay)
                pid = pid_of(cluster, victim)
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
                    wait_dead(pid)
                    events.append("killed %s (pid %d) at +%.2fs" % (victim, pid, delay))
                killed.set()
            t = threading.Thread(target=killer)
            t.start()
            ops = []
            errors = []
            # Operations until the kill, then ops_per_round more under it
            # (bounded in time), so every kill lands in the middle of work.
            after = 0
            round_end = time.time() + 30
            while after < args.ops_per_round and time.time() < round_end:
                if killed.is_set():
                    after += 1
                try:
                    ops.append(writer.one_op())
                except OSError as e:
                    errors.append("%s" % errno.errorcode.get(e.errno, e.errno))
                    if kind == "client":
                        time.sleep(0.05)
                    if len(errors) > 20:
                        break
            t.join()
            # Recovery: restart the victim (remount for the client).
            if victim == "dfs":
                unmount(mnt)
                mount(source, mnt, os.path.join(cluster, "dfs-%d.log" % round_no))
                with open(os.path.join(cluster, "dfs.pid"), "w") as f:
                    f.write(subprocess.run(["pgrep", "-nf", "%s %s" % (source, mnt)], stdout=subprocess.PIPE,
                                           text=True).stdout.strip() or "0")
            elif not alive(pid_of(cluster, victim)):
                run([TOOL, "restart", cluster, victim], timeout=60)
            wait_healthy(source, cluster)
            writer.clean_uncertain()
            mount(source, check_mnt, os.path.join(cluster, "check-%d.log" % round_no))
            try:
                problems = verify(writer, check_mnt)
            finally:
                unmount(check_mnt)
            summary = "round %d: kill %s; %d ops, %d failed (%s); %d files acknowledged" % (
                round_no, kind, len(ops), len(errors), ",".join(sorted(set(errors))) or "-", len(writer.acked))
            history.append("round %d: %s; %s" % (round_no, "; ".join(events) or "victim already gone", ops[-3:]))
            if kind != "client" and errors:
                problems.append("operations failed although only a %s was killed: %s" % (kind, errors[:5]))
            if problems:
                failures += 1
                print("not ok %d - %s" % (round_no, summary), flush=True)
                for p in problems[:20]:
                    print("#   %s" % p, flush=True)
                print("#   reproduce: %s --seed %d --rounds %d" % (sys.argv[0], seed, args.rounds), flush=True)
                for h in history:
                    print("#   %s" % h, flush=True)
            else:
                print("ok %d - %s" % (round_no, summary), flush=True)
    except Exception as e:  # noqa: BLE001 - report any harness failure as a failed round with the seed
        failures += 1
        print("not ok %d - harness: %s" % (len(history) + 1, e), flush=True)
        print("#   seed %d; history: %s" % (seed, history), flush=True)
    finally:
        unmount(check_mnt)
        subprocess.run([TOOL, "down", cluster], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                       env=dict(os.environ, DFS_BUILD_DIR=BUILD))
        if failures == 0:
            subprocess.run(["rm", "-rf", work])
        else:
            print("# logs kept in %s" % work, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
