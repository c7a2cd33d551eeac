#!/usr/bin/env python3
"""Every metrics endpoint, scraped and validated (issue [cluster-ops]).

A local cluster (1 dfs-meta, 3 dfs-chunkservers, each with --metrics on a
free port) and a dfs client mounted with -o metrics=...; files are written
and read through the mount. Then, for meta, every chunkserver and the
client:
  - the endpoint answers in the Prometheus text format and
    `promtool check metrics` (Debian's prometheus package; install-deps
    --tests unpacks it into .tools/) finds nothing wrong;
  - the metrics the README and the dashboard promise are there, with values
    that follow from the work done (a leader, heartbeats, bytes written and
    read, chunks stored, cache lookups, per-method and per-operation counts
    and latency histograms);
and every metric the Grafana dashboard (packaging/grafana/dfs-dashboard.json)
queries is served by some endpoint.

Environment: DFS_BUILD_DIR, DFS_SOURCE_DIR. Output is TAP; exit 1 on any
failure. Every wait is bounded; the cluster and the mount are stopped at
the end whatever happens.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.path.abspath(os.environ["DFS_BUILD_DIR"])
SOURCE = os.path.abspath(os.environ["DFS_SOURCE_DIR"])
sys.path.insert(0, os.path.join(SOURCE, "tests", "harness"))
import tap  # noqa: E402
LOCAL_CLUSTER = os.path.join(SOURCE, "packaging", "local-cluster")
PROMTOOL = os.path.join(SOURCE, ".tools", "promtool")






def scrape(address):
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
            return r.read().decode()
    except OSError as e:
        return f"# scrape failed: {e}"


def samples(text):
    """{(name, frozenset(labels)): value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(text, name, **labels):
    """Sum of every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and want <= set(ls))


def names(text):
    return {n for (n, _) in samples(text)}


def ready_value(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + "="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        pass
    return ""


def main():
    print("TAP version 13")
    if not tap.check("promtool is unpacked (packaging/install-deps --tests)", os.access(PROMTOOL, os.X_OK), PROMTOOL):
        return tap.finish()
    work = tempfile.mkdtemp(prefix="dfs-metrics-")
    cluster = os.path.join(work, "cluster")
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    env = dict(os.environ, DFS_BUILD_DIR=BUILD, DFS_META_ARGS="--metrics 127.0.0.1:0",
               DFS_CHUNKSERVER_ARGS="--metrics 127.0.0.1:0")
    mounted = False
    try:
        up = subprocess.run([LOCAL_CLUSTER, "up", cluster], env=env, capture_output=True, text=True, timeout=120)
        if not tap.check("local cluster with metrics endpoints starts", up.returncode == 0, up.stdout + up.stderr):
            return 1
        source = open(os.path.join(cluster, "source")).read().strip()
        client_metrics = f"127.0.0.1:{tap.free_port()}"
        dfs = subprocess.run([os.path.join(BUILD, "fuse", "dfs"), source, mnt, "-o",
                              f"metrics={client_metrics},log_file={os.path.join(work, 'dfs.log')}"],
                             capture_output=True, text=True, timeout=60)
        mounted = dfs.returncode == 0
        if not tap.check("dfs mounts with -o metrics=", mounted, dfs.stdout + dfs.stderr):
            return 1

        # Work that every endpoint should show.
        data = os.urandom(3 << 20)
        for i in range(5):
            with open(os.path.join(mnt, f"f{i}"), "wb") as f:
                f.write(data)
        # Two passes, each past the kernel's page cache (dropped per file),
        # so both reach dfs; the second finds the blocks in dfs's cache.
        same = True
        for _ in range(2):
            for i in range(5):
                with open(os.path.join(mnt, f"f{i}"), "rb") as f:
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                    same = same and f.read() == data
        tap.check("files written and read back through the mount", same)
        bad = subprocess.run([os.path.join(BUILD, "fuse", "dfs"), source, mnt + "-x", "-o", "metrics=nonsense"],
                             capture_output=True, text=True, timeout=60)
        tap.check("-o metrics=nonsense is refused with a message", bad.returncode != 0 and "metrics" in bad.stderr,
              bad.stderr)

        endpoints = {"meta": ready_value(os.path.join(cluster, "meta-1.ready"), "metrics")}
        for k in (1, 2, 3):
            endpoints[f"cs-{k}"] = ready_value(os.path.join(cluster, f"cs-{k}.ready"), "metrics")
        endpoints["client"] = client_metrics
        tap.check("every daemon names its metrics endpoint in its ready file", all(endpoints.values()), endpoints)

        # Meta's cluster gauges refresh every 10 s, the chunkservers' and
        # the client's every 2 s: wait until the work shows.
        def settled():
            meta = scrape(endpoints["meta"])
            return (value(meta, "dfs_meta_chunks", state="all") >= 5 and
                    all(value(scrape(endpoints[f"cs-{k}"]), "dfs_chunkserver_chunks", state="all") >= 5 for k in (1, 2, 3)) and
                    value(scrape(endpoints["client"]), "dfs_client_cache_lookups_total") > 0)
        tap.check("gauges catch up with the work within 30 s", tap.wait_for(settled, 30),
              {k: scrape(v)[:1500] for k, v in endpoints.items()})

        texts = {k: scrape(v) for k, v in endpoints.items()}
        served = set()
        for name, text in texts.items():
            served |= names(text)
            lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                                  timeout=60)
            tap.check(f"{name}: promtool check metrics finds nothing wrong", lint.returncode == 0,
                  lint.stdout + lint.stderr)

        meta = texts["meta"]
        tap.check("meta: this member leads", value(meta, "dfs_meta_raft", what="is_leader") == 1)
        tap.check("meta: commit and apply index advance", value(meta, "dfs_meta_raft", what="applied_index") > 10)
        tap.check("meta: counts heartbeats by method and code",
              value(meta, "dfs_meta_requests_total", method="/dfs.pb.MetaService/Heartbeat", code="OK") > 0,
              [l for l in meta.splitlines() if "requests_total" in l][:20])
        tap.check("meta: a latency histogram per method",
              value(meta, "dfs_meta_request_seconds_count", method="/dfs.pb.MetaService/CommitWrite") > 0)
        tap.check("meta: 5 files, 5 chunks, none under-replicated",
              value(meta, "dfs_meta_files") == 5 and value(meta, "dfs_meta_chunks", state="all") == 5 and
              value(meta, "dfs_meta_chunks", state="under_replicated") == 0, meta)
        tap.check("meta: small files kept in meta counted (none: these are 3 MiB)",
              "dfs_meta_inline" in names(meta) and value(meta, "dfs_meta_inline", what="chunks") == 0 and
              value(meta, "dfs_meta_inline", what="bytes") == 0,
              meta)
        tap.check("meta: the mount's lookups and getattrs came on call streams",
              "dfs_meta_call_streams" in names(meta) and value(meta, "dfs_meta_stream_calls_total") > 0,
              [l for l in meta.splitlines() if "stream" in l])
        tap.check("meta: 3 chunkservers up, capacity known",
              value(meta, "dfs_meta_chunkservers", state="up") == 3 and
              value(meta, "dfs_meta_chunkserver_bytes", what="capacity") > 0)
        tap.check("meta: its data folder's room measured, not short of it",
              value(meta, "dfs_meta_data_free_bytes") > 0 and value(meta, "dfs_meta_data_short_of_room") == 0,
              meta)
        for k in (1, 2, 3):
            cs = texts[f"cs-{k}"]
            tap.check(f"cs-{k}: bytes written (most of them with O_DIRECT), chunks stored, heartbeats, disk, "
                  "Write calls counted",
                  value(cs, "dfs_chunkserver_bytes_total", op="write") >= 5 * len(data) and
                  value(cs, "dfs_chunkserver_direct_write_bytes_total") >= 3 * len(data) and
                  value(cs, "dfs_chunkserver_chunks", state="all") == 5 and
                  value(cs, "dfs_chunkserver_chunks", state="damaged") == 0 and
                  value(cs, "dfs_chunkserver_heartbeats_total") > 0 and
                  value(cs, "dfs_chunkserver_disk_bytes", what="capacity") > 0 and
                  "dfs_chunkserver_short_of_room" in names(cs) and
                  value(cs, "dfs_chunkserver_request_seconds_count", method="/dfs.pb.ChunkService/Write") > 0,
                  cs)
        client = texts["client"]
        tap.check("client: bytes written and read by applications",
              value(client, "dfs_client_bytes_total", dir="write") == 5 * len(data) and
              value(client, "dfs_client_bytes_total", dir="read") >= 10 * len(data), client)
        tap.check("client: operations counted and timed",
              value(client, "dfs_client_ops_total", op="write") > 0 and
              value(client, "dfs_client_op_seconds_count", op="flush") >= 5, client)
        tap.check("client: cache hits on the second read pass",
              value(client, "dfs_client_cache_lookups_total", result="hit") > 0 and
              value(client, "dfs_client_cache_bytes") > 0, client)
        tap.check("client: listing pages fetched ahead of walks counted",
              "dfs_client_dir_prefetch_total" in names(client), client)

        # Stats one by one in a directory: the mount lists it (statahead) and
        # answers the next ones from the listing; the metrics say so.
        walked = os.path.join(mnt, "statahead")
        os.makedirs(walked)
        for i in range(12):
            open(os.path.join(walked, f"s{i}"), "w").close()
        time.sleep(1.3)  # past the kernel's entry and attribute timeouts
        for i in range(4):  # the 4th lookup meta answers starts the fetch
            os.stat(os.path.join(walked, f"s{i}"))
        time.sleep(0.3)  # it replies first and fetches after
        for i in range(4, 12):
            os.stat(os.path.join(walked, f"s{i}"))
        time.sleep(2.5)  # Refresh copies the counts every 2 s
        listed = scrape(endpoints["client"])
        tap.check("client: a directory stat one by one is listed, and the listing answers",
                  value(listed, "dfs_client_dir_listings_total", result="fetched") >= 1 and
                  value(listed, "dfs_client_dir_listings_total", result="served") >= 8 and
                  "dfs_client_dir_listings_total" in names(listed),
                  [l for l in listed.splitlines() if "dir_listings" in l])

        # A file of one chunk is read with nothing asked of meta but the open:
        # the open's reply says where chunk 0 is (OpenReply.first_chunk).
        method = "/dfs.pb.MetaService/GetChunkLocations"
        located = value(scrape(endpoints["meta"]), "dfs_meta_requests_total", method=method, code="OK")
        same = True
        for i in range(5):
            with open(os.path.join(mnt, f"f{i}"), "rb") as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                same = same and f.read() == data
        located_after = value(scrape(endpoints["meta"]), "dfs_meta_requests_total", method=method, code="OK")
        tap.check("reading 5 files of one chunk asks meta no GetChunkLocations (the open says where)",
                  same and located_after == located, {"before": located, "after": located_after, "same": same})

        # A cold sequential read fetches each byte from the chunkservers once:
        # the client's readahead and the reader it runs ahead of must not
        # both fetch a block (a third of a cold read was fetched twice).
        big = os.urandom(48 << 20)
        with open(os.path.join(mnt, "big"), "wb") as f:
            f.write(big)
        def cs_read_bytes():
            return sum(value(scrape(endpoints[f"cs-{k}"]), "dfs_chunkserver_bytes_total", op="read") for k in (1, 2, 3))
        before = cs_read_bytes()
        with open(os.path.join(mnt, "big"), "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            same = f.read() == big
        fetched = cs_read_bytes() - before
        tap.check("a cold sequential read of 48 MiB reads back whole and fetches it once (at most 1.05x)",
                  same and len(big) <= fetched <= 1.05 * len(big), {"fetched_bytes": fetched, "same": same})

        # A sparse file's holes cross the network as counts of zero blocks
        # (ReadReply.zero_blocks): a cold read of 1 MiB written 36 MiB into a
        # file fetches about its data, where it fetched all 37 MiB before.
        tail = os.urandom(1 << 20)
        with open(os.path.join(mnt, "sparse"), "wb") as f:
            f.write(b"head")
            f.seek(36 << 20)
            f.write(tail)
        before = cs_read_bytes()
        with open(os.path.join(mnt, "sparse"), "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            same = f.read() == b"head" + bytes((36 << 20) - 4) + tail
        fetched = cs_read_bytes() - before
        tap.check("a cold read of 1 MiB written 36 MiB into a file reads back whole and fetches under 3 MiB",
                  same and fetched < (3 << 20), {"fetched_bytes": fetched, "same": same})

        # Random reads of a file larger than the mount's cache fetch the bytes
        # asked for, not their whole 64 KiB blocks (ReadRequest.exact): a
        # block would rarely serve a second read before it is evicted.
        small = mnt + "-small"
        os.makedirs(small)
        third = subprocess.run([os.path.join(BUILD, "fuse", "dfs"), source, small, "-o", "cache_size=8M"],
                               capture_output=True, text=True, timeout=60)
        if tap.check("a mount with an 8 MiB cache", third.returncode == 0, third.stdout + third.stderr):
            try:
                rng = random.Random(7)
                before = cs_read_bytes()
                wrong = []
                with open(os.path.join(small, "big"), "rb") as f:
                    for _ in range(200):
                        at = rng.randrange(0, len(big) - 4096)
                        if os.pread(f.fileno(), 4096, at) != big[at:at + 4096]:
                            wrong.append(at)
                fetched = cs_read_bytes() - before
                tap.check("200 random 4 KiB reads of a 48 MiB file through an 8 MiB cache read right and fetch "
                          "under 16 KiB each", not wrong and fetched < 200 * 16384,
                          {"fetched_bytes": fetched, "wrong_offsets": wrong[:5]})
                # Reads near the last one still fetch whole blocks, which serve
                # the next ones: a backward scan is not a round trip per read.
                def cs_read_calls():
                    return sum(value(scrape(endpoints[f"cs-{k}"]), "dfs_chunkserver_request_seconds_count",
                                     method="/dfs.pb.ChunkService/Read") for k in (1, 2, 3))
                before, calls_before = cs_read_bytes(), cs_read_calls()
                with open(os.path.join(small, "big"), "rb") as f:
                    end = 40 << 20
                    for at in range(end - 4096, end - (2 << 20) - 1, -4096):
                        if os.pread(f.fileno(), 4096, at) != big[at:at + 4096]:
                            wrong.append(at)
                fetched, calls = cs_read_bytes() - before, cs_read_calls() - calls_before
                tap.check("a backward scan of 2 MiB in 4 KiB reads through that mount reads right, fetching "
                          "its 32 blocks once each in at most 40 calls, not 512", not wrong and
                          fetched <= 1.1 * (2 << 20) and calls <= 40,
                          {"fetched_bytes": fetched, "read_calls": calls, "wrong_offsets": wrong[:5]})
            finally:
                subprocess.run(["fusermount3", "-u", small], capture_output=True, timeout=60)

        # The kernel asks for security.capability before a write only until
        # it has seen that the file has none, since dfs takes on dropping
        # setuid/setgid itself (FUSE_HANDLE_KILLPRIV_V2, fuse/session_io.h);
        # before, it asked before every write, a round trip each.
        def client_ops(op):
            return value(scrape(endpoints["client"]), "dfs_client_ops_total", op=op)
        asked, wrote = client_ops("getxattr"), client_ops("write")
        fd = os.open(os.path.join(mnt, "small-writes"), os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            for i in range(200):
                os.pwrite(fd, b"x" * 4096, i * 8192)
        finally:
            os.close(fd)
        asked, wrote = client_ops("getxattr") - asked, client_ops("write") - wrote
        tap.check("200 writes of 4 KiB reach dfs as 200 writes and ask for security.capability at most 3 times",
                  wrote >= 200 and asked <= 3, {"writes": wrote, "getxattrs": asked})

        # What another mount changes reaches this one as notices (ChangeWatcher),
        # and the gauge says the mount is hearing them.
        other = mnt + "-other"
        os.makedirs(other)
        other_metrics = f"127.0.0.1:{tap.free_port()}"
        second = subprocess.run([os.path.join(BUILD, "fuse", "dfs"), source, other, "-o", f"metrics={other_metrics}"],
                                capture_output=True, text=True, timeout=60)
        other_mounted = second.returncode == 0
        if tap.check("a second mount of the cluster", other_mounted, second.stdout + second.stderr):
            try:
                before = scrape(endpoints["client"])
                for i in range(3):
                    with open(os.path.join(other, f"elsewhere-{i}"), "wb") as f:
                        f.write(b"x")
                os.chmod(os.path.join(other, "elsewhere-0"), 0o600)
                def heard():
                    now = scrape(endpoints["client"])
                    return (value(now, "dfs_client_change_watching") == 1 and
                            value(now, "dfs_client_change_notices_total", kind="name") >=
                            value(before, "dfs_client_change_notices_total", kind="name") + 3 and
                            value(now, "dfs_client_change_notices_total", kind="inode") >
                            value(before, "dfs_client_change_notices_total", kind="inode"))
                tap.check("client: another mount's creates and chmod heard as notices, and watching is 1",
                          tap.wait_for(heard, 15),
                          [l for l in scrape(endpoints["client"]).splitlines() if "change_" in l])

                # Both mounts append to one log from where they opened it (its
                # empty end): whichever flushes second finds the end moved and
                # places its line there, and says so in its metrics.
                def moved():
                    return sum(value(scrape(e), "dfs_client_appends_moved_total")
                               for e in (endpoints["client"], other_metrics))
                moved_before = moved()
                log = os.path.join(mnt, "shared-log")
                open(log, "wb").close()
                here = os.open(log, os.O_WRONLY | os.O_APPEND)
                there = os.open(os.path.join(other, "shared-log"), os.O_WRONLY | os.O_APPEND)
                os.write(here, b"from the first mount\n")
                os.write(there, b"from the second mount\n")
                os.close(there)
                os.close(here)
                with open(log, "rb") as f:
                    lines = sorted(f.read().splitlines())
                tap.check("client: two mounts' appends to one log both land whole, and one run is counted as moved",
                          lines == [b"from the first mount", b"from the second mount"] and
                          tap.wait_for(lambda: moved() >= moved_before + 1, 15),
                          {"lines": lines, "moved": moved() - moved_before})
            finally:
                subprocess.run(["fusermount3", "-u", other], capture_output=True, timeout=60)

        dashboard = json.load(open(os.path.join(SOURCE, "packaging", "grafana", "dfs-dashboard.json")))
        queried = set()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                queried |= set(re.findall(r"\b(dfs_[a-z_]+)", target["expr"]))
        missing = sorted(q for q in queried if q not in served)
        tap.check(f"the Grafana dashboard's {len(dashboard['panels'])} panels query only served metrics "
              f"({len(queried)} names)", not missing and len(queried) > 10, missing)
    finally:
        if mounted:
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True, timeout=60)
        subprocess.run([LOCAL_CLUSTER, "down", cluster], capture_output=True, timeout=120)
        if not os.path.ismount(mnt):  # never delete through a mount that is still there
            shutil.rmtree(work, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
