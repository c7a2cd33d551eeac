#!/usr/bin/env python3
"""The installed layout, without building a Debian package (too slow for CI).

`meson install --destdir` from the build tree under test, then:
  - the binaries, systemd units, sysusers entry, /etc/dfs and the example
    configuration are where the README says, and the man pages when this
    build has help2man;
  - the units are valid (systemd-analyze verify when systemd is installed,
    else a check of the keys the daemons depend on) and start the installed
    binaries with --config SYSCONFDIR/dfs/<daemon>-%i.conf;
  - every key of the example configurations is a flag of its daemon (CLI11
    ignores unknown keys in a config file, so starting alone would not show a
    misspelt key);
  - the example configurations, with paths and addresses moved to a temp dir
    and 127.0.0.1, start the installed dfs-meta and dfs-chunkserver through
    each unit's ExecStart line; both become ready, the chunkserver registers,
    and both exit 0 on SIGTERM;
  - packaging/debian is consistent: changelog version = meson project
    version, control names the package, its Build-Depends cover what
    packaging/install-deps installs for building, fuse3 is a dependency.

Environment: DFS_BUILD_DIR (meson build tree), DFS_SOURCE_DIR (source root).
Output is TAP (meson counts each check); exit 1 on any failure.
Every wait is bounded; every process started is stopped by pid at the end.
"""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(os.environ["DFS_BUILD_DIR"])
SOURCE = os.path.abspath(os.environ["DFS_SOURCE_DIR"])
sys.path.insert(0, os.path.join(SOURCE, "tests", "harness"))
import tap  # noqa: E402  (its free_port only: this file keeps its own TAP counters)
DAEMONS = ("dfs-meta", "dfs-chunkserver")

failures = 0
checks = 0
processes = []  # (name, Popen) of everything started, stopped in cleanup()


def check(what, ok, detail=""):
    global checks, failures
    checks += 1
    if ok:
        print(f"ok {checks} - {what}", flush=True)
    else:
        failures += 1
        print(f"not ok {checks} - {what}", flush=True)
        for line in str(detail).splitlines():
            print(f"#   {line}", flush=True)
    return ok


def skip(what, why):
    global checks
    checks += 1
    print(f"ok {checks} - {what} # SKIP {why}", flush=True)


def run(args, timeout=60, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def meson_options():
    out = run(["meson", "introspect", "--buildoptions", BUILD]).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def under(destdir, path):
    return os.path.join(destdir, path.lstrip("/"))


def parse_unit(path):
    """{section: {key: [values]}} of a systemd unit file."""
    sections, current = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), {})
            elif "=" in line and current is not None:
                key, value = line.split("=", 1)
                current.setdefault(key.strip(), []).append(value.strip())
    return sections


def parse_config(path):
    """[(key, value)] of a CLI11 INI/TOML config file, in order."""
    pairs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and line[0] not in "#;[" and "=" in line:
                key, value = line.split("=", 1)
                pairs.append((key.strip(), value.strip()))
    return pairs


def like(example, value):
    """`value` quoted the way the example's value is (quotes matter to CLI11)."""
    return f'"{value}"' if example.startswith('"') else value


def write_config(path, pairs):
    with open(path, "w") as f:
        for key, value in pairs:
            f.write(f"{key} = {value}\n")

def wait_for(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def start(name, args, log_path):
    log = open(log_path, "w")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    processes.append((name, p))
    return p


def ready_address(ready_file, proc, timeout_s=30):
    def ready():
        return os.path.exists(ready_file) or proc.poll() is not None
    wait_for(ready, timeout_s)
    if not os.path.exists(ready_file):
        return None
    with open(ready_file) as f:
        m = re.search(r"^address=(\S+)", f.read(), re.M)
    return m.group(1) if m else None


def stop(proc, timeout_s=10):
    """SIGTERM, bounded wait, then SIGKILL. Returns the exit status (None if killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


def cleanup():
    for _, p in reversed(processes):
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def tail(path, n=15):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return str(e)


def check_layout(destdir, opts, unitdir):
    prefix = opts["prefix"]
    bindir = os.path.join(prefix, opts["bindir"])
    for exe in ("dfs", "dfsctl", "dfs-make-certs") + DAEMONS:
        path = under(destdir, os.path.join(bindir, exe))
        check(f"{bindir}/{exe} installed and executable", os.access(path, os.X_OK), path)
    for unit in ("dfs-meta@.service", "dfs-chunkserver@.service"):
        check(f"{unitdir}/{unit} installed", os.path.isfile(under(destdir, os.path.join(unitdir, unit))))
    check("sysusers entry for the user dfs",
          os.path.isfile(under(destdir, os.path.join(prefix, "lib/sysusers.d/dfs.conf"))))
    sysconfdir = os.path.join(prefix, opts["sysconfdir"])
    check(f"{sysconfdir}/dfs exists", os.path.isdir(under(destdir, os.path.join(sysconfdir, "dfs"))))
    examples = os.path.join(prefix, opts["datadir"], "doc/dfs/examples")
    for conf in ("meta.conf", "chunkserver.conf"):
        check(f"{examples}/{conf} installed", os.path.isfile(under(destdir, os.path.join(examples, conf))))

    mandir = os.path.join(prefix, opts["mandir"])
    pages = {"dfs": "man1/dfs.1", "dfsctl": "man1/dfsctl.1",
             "dfs-meta": "man8/dfs-meta.8", "dfs-chunkserver": "man8/dfs-chunkserver.8"}
    installed = json.loads(run(["meson", "introspect", "--installed", BUILD]).stdout).values()
    planned = any(p.endswith("/man8/dfs-meta.8") for p in installed)
    if not planned:
        why = ("help2man is installed but this build tree was configured without it: "
               "meson setup --reconfigure" if shutil.which("help2man") else "no help2man (package help2man)")
        skip("man pages", why)
        return
    # A word of each program's --help (roff escapes dashes as \-).
    expect = {"dfs": "connect_timeout", "dfsctl": "--meta", "dfs-meta": "--node-dead-after",
              "dfs-chunkserver": "--heartbeat-interval"}
    for name, page in pages.items():
        path = under(destdir, os.path.join(mandir, page))
        text = open(path).read().replace("\\-", "-") if os.path.isfile(path) else ""
        check(f"man page {page} made from {name} --help", ".TH" in text and expect[name] in text, path)


def check_units(destdir, opts, unitdir, work):
    """Returns {daemon: ExecStart argv} for the daemon start check."""
    prefix = opts["prefix"]
    bindir = os.path.join(prefix, opts["bindir"])
    sysconfdir = os.path.join(prefix, opts["sysconfdir"])
    exec_starts = {}
    analyze = shutil.which("systemd-analyze")
    for daemon in DAEMONS:
        unit = f"{daemon}@.service"
        path = under(destdir, os.path.join(unitdir, unit))
        if not os.path.isfile(path):
            continue
        text = open(path).read()
        check(f"{unit}: every @variable@ substituted", not re.search(r"@[a-z_]+@", text))
        u = parse_unit(path)
        service = u.get("Service", {})
        exec_start = service.get("ExecStart", [""])[-1].split()
        config = f"{sysconfdir}/dfs/{daemon.removeprefix('dfs-')}-%i.conf"
        check(f"{unit}: ExecStart={bindir}/{daemon} --config {config}",
              exec_start == [f"{bindir}/{daemon}", "--config", config], " ".join(exec_start))
        exec_starts[daemon] = exec_start
        for section, key, value in (("Unit", "Description", None), ("Service", "Restart", "on-failure"),
                                    ("Service", "User", "dfs"), ("Service", "LimitNOFILE", None),
                                    ("Service", "RestartPreventExitStatus", "2"),
                                    ("Install", "WantedBy", "multi-user.target")):
            values = u.get(section, {}).get(key, [])
            check(f"{unit}: [{section}] {key}" + (f"={value}" if value else ""),
                  bool(values) and (value is None or value in values), str(values))
        if analyze is None:
            skip(f"systemd-analyze verify {unit}", "systemd is not installed (the key checks above still ran)")
            continue
        # verify wants the ExecStart program to exist: point it into the destdir.
        copy = os.path.join(work, unit)
        with open(copy, "w") as f:
            f.write(text.replace(f"ExecStart={bindir}/", f"ExecStart={under(destdir, bindir)}/"))
        r = run([analyze, "verify", "--man=no", copy], timeout=60)
        # verify exits 0 on unknown keys and unparsable values; it only warns.
        check(f"systemd-analyze verify {unit}: no errors or warnings",
              r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stderr + r.stdout)
    return exec_starts


def daemon_flags(exe):
    r = run([exe, "--help"], timeout=30)
    return set(re.findall(r"--([a-z][a-z0-9-]*)", r.stdout))


def check_config_keys(destdir, opts):
    """Every key of each example config is a long flag of its daemon."""
    bindir = under(destdir, os.path.join(opts["prefix"], opts["bindir"]))
    examples = under(destdir, os.path.join(opts["prefix"], opts["datadir"], "doc/dfs/examples"))
    for daemon in DAEMONS:
        conf = os.path.join(examples, daemon.removeprefix("dfs-") + ".conf")
        if not os.path.isfile(conf):
            continue
        flags = daemon_flags(os.path.join(bindir, daemon))
        pairs = parse_config(conf)
        unknown = [k for k, _ in pairs if k not in flags]
        check(f"every key of {os.path.basename(conf)} is a {daemon} flag", not unknown, f"unknown: {unknown}")
        # CLI11 reads an unquoted a,b,c as three values (and refuses it for a single-value flag).
        unquoted = [k for k, v in pairs if "," in v and not v.startswith(('"', "["))]
        check(f"{os.path.basename(conf)}: every value with commas is quoted", not unquoted, f"unquoted: {unquoted}")


def check_daemons_start(destdir, opts, exec_starts, work):
    prefix = opts["prefix"]
    bindir = os.path.join(prefix, opts["bindir"])
    examples = under(destdir, os.path.join(prefix, opts["datadir"], "doc/dfs/examples"))
    if set(exec_starts) != set(DAEMONS):
        skip("daemons start from the example configs", "a unit is missing (see above)")
        return
    key_file = os.path.join(work, "cluster.key")
    with open(key_file, "w") as f:  # what the README says: base64 of 32 random bytes
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    os.chmod(key_file, 0o600)

    def command(daemon, config):
        argv = [a.replace("%i", "test") for a in exec_starts[daemon]]
        argv[0] = under(destdir, argv[0])  # the installed binary
        argv[argv.index("--config") + 1] = config
        return argv

    # dfs-meta, from meta.conf: a Raft group of one (members = itself).
    raft_port = tap.free_port()
    overrides = {"listen": "127.0.0.1:0", "data": os.path.join(work, "meta"), "cluster-key-file": key_file,
                 "metrics": "127.0.0.1:0", "raft-listen": f"127.0.0.1:{raft_port}",
                 "members": f"1=127.0.0.1:{raft_port}", "node-id": "1"}
    pairs = [(k, like(v, overrides[k]) if k in overrides else v)
             for k, v in parse_config(os.path.join(examples, "meta.conf"))]
    meta_ready = os.path.join(work, "meta.ready")
    write_config(os.path.join(work, "meta.conf"), pairs + [("ready-file", meta_ready)])
    meta = start("dfs-meta", command("dfs-meta", os.path.join(work, "meta.conf")), os.path.join(work, "meta.log"))
    meta_addr = ready_address(meta_ready, meta)
    if not check("dfs-meta starts from meta.conf through its unit's ExecStart", meta_addr is not None,
                 tail(os.path.join(work, "meta.log"))):
        return

    # dfs-chunkserver, from chunkserver.conf.
    disk = os.path.join(work, "disk1")
    os.mkdir(disk)  # the chunkserver refuses a missing data folder
    # A list of meta addresses, as in the example: meta and a port nobody listens on.
    overrides = {"listen": "127.0.0.1:0", "meta": f"{meta_addr},127.0.0.1:{tap.free_port()}",
                 "data": json.dumps([disk]), "cluster-key-file": key_file, "metrics": "127.0.0.1:0"}
    pairs = [(k, like(v, overrides[k]) if k in overrides else v)
             for k, v in parse_config(os.path.join(examples, "chunkserver.conf"))
             if k != "advertise"]  # the bound 127.0.0.1 address is advertised instead
    cs_ready = os.path.join(work, "cs.ready")
    write_config(os.path.join(work, "cs.conf"), pairs + [("ready-file", cs_ready)])
    cs = start("dfs-chunkserver", command("dfs-chunkserver", os.path.join(work, "cs.conf")),
               os.path.join(work, "cs.log"))
    cs_addr = ready_address(cs_ready, cs)
    check("dfs-chunkserver starts from chunkserver.conf through its unit's ExecStart", cs_addr is not None,
          tail(os.path.join(work, "cs.log")))

    dfsctl = under(destdir, os.path.join(bindir, "dfsctl"))

    def registered():
        r = run([dfsctl, "--meta", meta_addr, "--timeout", "5s", "nodes", "--json"], timeout=30)
        if r.returncode != 0:
            return False
        nodes = json.loads(r.stdout).get("chunkservers", [])
        return any(n.get("address") == cs_addr and n.get("state") == "up" for n in nodes)
    if cs_addr is not None:
        check("the installed dfsctl sees the chunkserver registered and up", wait_for(registered, 30))

    for name, proc in (("dfs-chunkserver", cs), ("dfs-meta", meta)):
        rc = stop(proc)
        check(f"{name} exits 0 on SIGTERM", rc == 0, f"exit status {rc}")


def check_debian(project_version):
    deb = os.path.join(SOURCE, "packaging/debian")
    if shutil.which("dpkg-parsechangelog"):
        r = run(["dpkg-parsechangelog", "-l", os.path.join(deb, "changelog")], timeout=30)
        fields = dict(re.findall(r"^(\w[\w-]*): (.*)$", r.stdout, re.M))
        check("dpkg-parsechangelog reads packaging/debian/changelog", r.returncode == 0, r.stderr)
    else:  # dpkg-dev is not installed: read the first line ourselves
        skip("dpkg-parsechangelog", "no dpkg-dev; checking the first changelog line only")
        m = re.match(r"^(\S+) \(([^)]+)\) \S+; urgency=\S+$", open(os.path.join(deb, "changelog")).readline())
        fields = {"Source": m.group(1), "Version": m.group(2)} if m else {}
    check("changelog: source dfs", fields.get("Source") == "dfs", str(fields))
    check(f"changelog version = meson project version {project_version} (native: no '-')",
          fields.get("Version") == project_version, fields.get("Version", "unparsed"))
    check("source format 3.0 (native)", open(os.path.join(deb, "source/format")).read().strip() == "3.0 (native)")
    rules = os.path.join(deb, "rules")
    check("rules is an executable makefile using dh's meson buildsystem",
          os.access(rules, os.X_OK) and open(rules).readline().startswith("#!/usr/bin/make -f")
          and "--buildsystem=meson" in open(rules).read())
    for script in ("postinst", "postrm"):
        path = os.path.join(deb, script)
        text = open(path).read()
        r = run(["sh", "-n", path], timeout=30)
        check(f"{script}: #!/bin/sh, #DEBHELPER#, valid sh",
              text.startswith("#!/bin/sh") and "#DEBHELPER#" in text and r.returncode == 0, r.stderr)

    # control: paragraphs of "Field: value" with indented continuation lines.
    paragraphs = []
    for block in open(os.path.join(deb, "control")).read().split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if fields:
            paragraphs.append(fields)
    source = paragraphs[0] if paragraphs else {}
    binary = paragraphs[1] if len(paragraphs) > 1 else {}
    check("control: Source: dfs, Package: dfs", source.get("Source") == "dfs" and binary.get("Package") == "dfs")

    def names(field):
        return {re.split(r"[\s(\[<]", d.strip())[0] for d in field.split(",") if d.strip()}
    build_deps = names(source.get("Build-Depends", ""))
    check("control: Build-Depends debhelper-compat (= 13), help2man",
          "debhelper-compat (= 13)" in source.get("Build-Depends", "") and "help2man" in build_deps)
    # What install-deps installs to build (not its runtime or test tools) must be a Build-Depends.
    text = open(os.path.join(SOURCE, "packaging/install-deps")).read()
    m = re.search(r"packages=\((.*?)\n\)", text, re.S)
    listed = set(re.sub(r"#.*", "", m.group(1)).split()) if m else set()
    needed = {p for p in listed if p.endswith("-dev") or p in
              ("meson", "ninja-build", "pkg-config", "protobuf-compiler", "protobuf-compiler-grpc")}
    check("control: Build-Depends has every build package of packaging/install-deps",
          bool(needed) and needed <= build_deps, f"missing: {sorted(needed - build_deps)}")
    depends = names(binary.get("Depends", ""))
    check("control: dfs Depends on fuse3 (mount.fuse3, fusermount3) and adduser",
          {"fuse3", "adduser"} <= depends, str(sorted(depends)))


def main():
    opts = meson_options()
    unitdir = opts.get("systemdunitdir") or os.path.join(opts["prefix"], "lib/systemd/system")
    project_version = json.loads(run(["meson", "introspect", "--projectinfo", BUILD]).stdout)["version"]
    work = tempfile.mkdtemp(prefix="dfs-install-test.")
    try:
        destdir = os.path.join(work, "destdir")
        r = run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", destdir], timeout=180)
        if check("meson install --destdir", r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]):
            check_layout(destdir, opts, unitdir)
            exec_starts = check_units(destdir, opts, unitdir, work)
            check_config_keys(destdir, opts)
            check_daemons_start(destdir, opts, exec_starts, work)
        check_debian(project_version)
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(f"1..{checks}")
    print(f"# {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
