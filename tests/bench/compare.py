#!/usr/bin/env python3
"""The workloads of tests/bench/compare-bench, run on several folders in one
process, printed as one table (issue [crash-and-bench]).

    compare.py [--quick] [--runs N] [--only GROUP,...] NAME=DIR [NAME=DIR ...]

The first NAME is the subject (dfs); every other column gets a ratio
subject/other. Each figure is the median of --runs runs (3 by default).
Rates (MiB/s, IOPS, ops/s) are "higher is better"; times (s) are "lower is
better"; ratios are always "how many times faster dfs is" (> 1: dfs wins).
Between a write and the read of the same data every page cache is dropped
(/proc/sys/vm/drop_caches), so reads come from each filesystem, not memory.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

QUICK = "--quick" in sys.argv
RUNS = 1 if QUICK else 3
args = [a for a in sys.argv[1:] if a != "--quick"]
if "--runs" in args:
    i = args.index("--runs")
    RUNS = int(args[i + 1])
    del args[i:i + 2]
# Workload groups, in the order they run; --only picks some (a focused A/B).
GROUPS = ["seq", "rand-read", "rand-write", "append", "meta", "mkdir", "tree"]
ONLY = set(GROUPS)
if "--only" in args:
    i = args.index("--only")
    ONLY = set(args[i + 1].split(","))
    del args[i:i + 2]
    if not ONLY <= set(GROUPS):
        sys.exit(f"compare.py: --only takes some of {','.join(GROUPS)}")
TARGETS = [tuple(a.split("=", 1)) for a in args]

SEQ_MIB = 256 if QUICK else 1024
RAND_S = 5 if QUICK else 15
FILES = 2000 if QUICK else 10000
TREE_SRC = "/usr/include/linux" if QUICK else "/usr/include"


def drop_caches():
    subprocess.run(["sync"], check=False)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def sh(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       errors="replace")
    if r.returncode != 0:
        raise RuntimeError(f"{cmd} (in {cwd}) failed: {r.stderr.strip()[-2000:]}")


def timed(fn):
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def fio(directory, *extra):
    run = subprocess.run(["fio", f"--directory={directory}", "--output-format=json", "--name=job", *extra],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"fio {' '.join(extra)} in {directory} failed ({run.returncode}): "
                           f"{run.stderr.strip()[-2000:]} {run.stdout.strip()[-2000:]}")
    out = run.stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = "write" if job["write"]["io_bytes"] > 0 else "read"
    return job[side]["bw_bytes"] / 1048576, job[side]["iops"]


def fresh(base, name):
    path = os.path.join(base, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


# Each workload: (row label, unit, kind, fn(dir) -> value); kind "rate" or "time".
def seq_write(d):
    w = fresh(d, "seq")
    return fio(w, "--rw=write", "--bs=1M", f"--size={SEQ_MIB}M", "--end_fsync=1", "--filename=f")[0]


def seq_read(d):
    w = os.path.join(d, "seq")
    if not os.path.exists(os.path.join(w, "f")):
        seq_write(d)
    drop_caches()
    return fio(w, "--rw=read", "--bs=1M", f"--size={SEQ_MIB}M", "--filename=f")[0]


def rand_read(d):
    w = os.path.join(d, "seq")
    if not os.path.exists(os.path.join(w, "f")):
        seq_write(d)
    drop_caches()
    return fio(w, "--rw=randread", "--bs=4k", f"--size={SEQ_MIB}M", "--filename=f", "--time_based",
               f"--runtime={RAND_S}", "--ioengine=psync")[1]


def rand_write(d):
    w = os.path.join(d, "seq")
    if not os.path.exists(os.path.join(w, "f")):
        seq_write(d)
    return fio(w, "--rw=randwrite", "--bs=4k", f"--size={SEQ_MIB}M", "--filename=f", "--time_based",
               f"--runtime={RAND_S}", "--end_fsync=1", "--ioengine=psync")[1]


def fsync_append(d):
    w = fresh(d, "append")
    return fio(w, "--rw=write", "--bs=4k", "--size=4M" if QUICK else "--size=16M", "--fsync=1",
               "--filename=log")[1]


def meta_ops(d, tree):
    w = fresh(d, "meta")
    names = []
    for i in range(FILES):
        sub = f"d{i % 100}" if tree else ""
        names.append(os.path.join(w, sub, f"file-{i:06d}"))
    if tree:
        for k in range(100):
            os.mkdir(os.path.join(w, f"d{k}"))
    rates = {}

    def create():
        for n in names:
            os.close(os.open(n, os.O_CREAT | os.O_WRONLY, 0o644))
    rates["create"] = FILES / timed(create)

    def stat():
        for n in names:
            os.stat(n)
    rates["stat"] = FILES / timed(stat)

    def readdir():
        count = 0
        for root, dirs, files in os.walk(w):
            count += len(files)
        assert count == FILES, count
    rates["readdir"] = FILES / timed(readdir)

    def rename():
        for n in names:
            os.rename(n, n + ".r")
    rates["rename"] = FILES / timed(rename)

    def unlink():
        for n in names:
            os.unlink(n + ".r")
    rates["unlink"] = FILES / timed(unlink)
    return rates


def mkdir_deep(d):
    w = fresh(d, "deep")
    path = os.path.join(w, *[f"level{i}" for i in range(200)])
    return timed(lambda: os.makedirs(path))


def tree_ops(d):
    w = fresh(d, "tree")
    times = {}
    times["cp -a tree"] = timed(lambda: sh(f"cp -a {TREE_SRC} copy", w))
    times["tar c"] = timed(lambda: sh("tar cf tree.tar copy", w))
    os.makedirs(os.path.join(w, "untar"))
    times["tar x"] = timed(lambda: sh("tar xf ../tree.tar", os.path.join(w, "untar")))
    times["du -s"] = timed(lambda: sh("du -s copy", w))
    times["find -name"] = timed(lambda: sh("find copy -name '*.h' | wc -l", w))
    repo = os.path.join(w, "copy")
    sh("git init -q . && git config user.email b@x && git config user.name bench", repo)
    times["git add+commit"] = timed(lambda: sh("git add -A && git commit -qm tree", repo))
    times["git status"] = timed(lambda: sh("git status --porcelain", repo))
    return times


def main():
    rows = {}  # label -> (unit, kind, {target: [values]})

    def record(label, unit, kind, target, value):
        rows.setdefault(label, (unit, kind, {}))[2].setdefault(target, []).append(value)

    for run in range(RUNS):
        for name, d in TARGETS:
            print(f"# run {run + 1}/{RUNS}: {name} ({d})", file=sys.stderr, flush=True)
            if "seq" in ONLY:
                record("seq write (1 MiB blocks, fsync)", "MiB/s", "rate", name, seq_write(d))
                record("seq read (cold)", "MiB/s", "rate", name, seq_read(d))
            if "rand-read" in ONLY:
                if "seq" not in ONLY:
                    seq_read(d)  # writes the file, and as in a full run leaves its tail in the mount's cache
                record(f"4 KiB random read ({RAND_S} s)", "IOPS", "rate", name, rand_read(d))
            if "rand-write" in ONLY:
                record(f"4 KiB random write ({RAND_S} s, fsync)", "IOPS", "rate", name, rand_write(d))
            if "append" in ONLY:
                record("4 KiB append + fsync each", "IOPS", "rate", name, fsync_append(d))
            shutil.rmtree(os.path.join(d, "seq"), ignore_errors=True)
            if "meta" in ONLY:
                for tree in (False, True):
                    where = "tree of 100 dirs" if tree else "one dir"
                    for op, rate in meta_ops(d, tree).items():
                        record(f"{op} {FILES} files, {where}", "ops/s", "rate", name, rate)
            if "mkdir" in ONLY:
                record("mkdir -p 200 levels", "s", "time", name, mkdir_deep(d))
            if "tree" in ONLY:
                for op, seconds in tree_ops(d).items():
                    record(f"{op} ({TREE_SRC})", "s", "time", name, seconds)
            for sub in ("meta", "deep", "tree", "append"):
                shutil.rmtree(os.path.join(d, sub), ignore_errors=True)

    subject = TARGETS[0][0]
    others = [n for n, _ in TARGETS[1:]]
    header = ["workload", "unit"] + [n for n, _ in TARGETS] + [f"{subject}/{o}" for o in others]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for label, (unit, kind, values) in rows.items():
        med = {n: statistics.median(v) for n, v in values.items()}
        cells = [label, unit] + [f"{med[n]:,.1f}" if med[n] < 100 else f"{med[n]:,.0f}" for n, _ in TARGETS]
        for o in others:
            if kind == "rate":
                ratio = med[subject] / med[o] if med[o] > 0 else float("inf")
            else:
                ratio = med[o] / med[subject] if med[subject] > 0 else float("inf")
            cells.append(f"{ratio:.2f}")
        print("| " + " | ".join(cells) + " |")
    print(f"\n(median of {RUNS} run(s); ratios: how many times faster {subject} is, > 1 = {subject} wins)")


if __name__ == "__main__":
    main()
