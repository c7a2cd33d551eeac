#!/usr/bin/env python3
"""TLS, authentication of mounts and admin calls, and the mount options
users expect (issue [security]), on real local clusters.

Cluster A (local-cluster up --tls): every port serves TLS with certificates
from packaging/make-certs; a mount must present the client secret.
  - meta and a chunkserver port complete a TLS handshake verified against
    the cluster CA (openssl s_client), and refuse a plaintext client;
  - a mount with the secret writes and reads; without the secret, or with a
    wrong one, `dfs` exits non-zero saying why and nothing is mounted;
  - dfsctl: the client secret may read status but not drain a node (meta)
    nor Stat chunks on a chunkserver (fsck); the cluster key may;
  - SOURCE:/subdir mounts show only that directory, and '..' at their root
    stays on the local side; a missing subdir is refused;
  - -o ro refuses writes with EROFS and still reads;
  - -o root_squash: local root is nobody (65534) on the cluster.
Cluster B (local-cluster up --mtls): callers prove themselves with a
certificate of the cluster CA.
  - a mount with the client certificate writes and reads; one without a
    certificate, or with one from another CA, is refused;
  - a client certificate (CN=client) cannot make admin calls; the node
    certificate can.

Environment: DFS_BUILD_DIR, DFS_SOURCE_DIR. TAP output; exit 1 on any
failure. Every wait is bounded; clusters and mounts are stopped at the end
whatever happens.
"""

import errno
import os
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(os.environ["DFS_BUILD_DIR"])
SOURCE = os.path.abspath(os.environ["DFS_SOURCE_DIR"])
sys.path.insert(0, os.path.join(SOURCE, "tests", "harness"))
import tap  # noqa: E402
LOCAL_CLUSTER = os.path.join(SOURCE, "packaging", "local-cluster")
MAKE_CERTS = os.path.join(SOURCE, "packaging", "make-certs")
DFS = os.path.join(BUILD, "fuse", "dfs")
DFSCTL = os.path.join(BUILD, "ctl", "dfsctl")

mounts = []



def run(argv, timeout=60, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, -1, e.stdout or "", f"timed out after {timeout}s")


def up(directory, *flags):
    env = dict(os.environ, DFS_BUILD_DIR=BUILD)
    r = run([LOCAL_CLUSTER, "up", directory, *flags], timeout=120, env=env)
    info = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition("=")
        info[key] = value
    return r, info


def down(directory):
    run([LOCAL_CLUSTER, "down", directory], timeout=60, env=dict(os.environ, DFS_BUILD_DIR=BUILD))


def mount(source, mnt, options, timeout="8s"):
    os.makedirs(mnt, exist_ok=True)
    opts = f"connect_timeout={timeout},log_file={mnt}.log" + (f",{options}" if options else "")
    r = run([DFS, source, mnt, "-o", opts], timeout=60)
    if r.returncode == 0:
        mounts.append(mnt)
    return r


def unmount(mnt):
    if os.path.ismount(mnt):
        run(["fusermount3", "-u", mnt], timeout=30)
        if os.path.ismount(mnt):
            run(["umount", "-l", mnt], timeout=30)
    if mnt in mounts:
        mounts.remove(mnt)


def ctl(source, *args, config=None, extra=()):
    argv = [DFSCTL, "--meta", source, "--timeout", "15s", *extra]
    if config:
        argv += ["--config", config]
    return run(argv + list(args), timeout=60)


def tls_handshake(address, ca):
    host, port = address.rsplit(":", 1)
    r = run(["openssl", "s_client", "-connect", f"{host}:{port}", "-CAfile", ca, "-verify_return_error",
             "-alpn", "h2", "-brief"], timeout=20, input="")
    return r.returncode == 0 and "Verification: OK" in (r.stdout + r.stderr), r.stdout + r.stderr


def errno_of(fn):
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno


def ready_address(directory, name):
    with open(os.path.join(directory, f"{name}.ready")) as f:
        for line in f:
            if line.startswith("address="):
                return line.strip().split("=", 1)[1]
    return ""


def test_tls_cluster(base):
    d = os.path.join(base, "a")
    r, info = up(d, "--tls", "--mount", os.path.join(d, "mnt"))
    if not tap.check("local-cluster up --tls starts and mounts", r.returncode == 0 and "mount" in info,
                 r.stdout + r.stderr):
        return
    source, options, conf, mnt = info["source"], info["options"], info["dfsctl_config"], info["mount"]
    ca = os.path.join(d, "tls", "ca.pem")
    secret = os.path.join(d, "client.secret")

    ok, out = tls_handshake(source, ca)
    tap.check("meta's port completes a TLS handshake verified against the cluster CA", ok, out)
    ok, out = tls_handshake(ready_address(d, "cs-1"), ca)
    tap.check("a chunkserver's port completes a TLS handshake verified against the cluster CA", ok, out)

    path = os.path.join(mnt, "hello.txt")
    data = os.urandom(3 << 20)
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as f:
        tap.check("the TLS mount writes and reads 3 MiB", f.read() == data)
    latin1 = os.path.join(mnt.encode(), b"caf\xe9-latin1")
    with open(latin1, "wb") as f:
        f.write(b"bytes, not UTF-8")
    tap.check("a name that is not UTF-8 (legal on Linux) is created, listed and read",
          b"caf\xe9-latin1" in os.listdir(mnt.encode()) and open(latin1, "rb").read() == b"bytes, not UTF-8")

    deep = mnt
    for _ in range(60):
        deep = os.path.join(deep, "d" * 60)
        os.mkdir(deep)
    tap.check("a 60-level tree of 60-byte names (3.6 KB path) is made and found",
          os.path.isdir(deep) and len(deep) > 3600)
    too_long = os.path.join(deep, "e" * 200, "f" * 200, "g" * 200)  # over 4096 bytes, each name legal
    tap.check("a path over 4096 bytes is ENAMETOOLONG",
          len(too_long) > 4096 and errno_of(lambda: os.makedirs(too_long)) == errno.ENAMETOOLONG)
    tap.check("a 256-byte name is ENAMETOOLONG", errno_of(lambda: open(os.path.join(mnt, "n" * 256), "w")) == errno.ENAMETOOLONG)

    r = ctl(source, "status")
    tap.check("plaintext dfsctl is refused", r.returncode != 0, r.stdout + r.stderr)
    r = ctl(source, "status", extra=["--tls-ca", ca])
    tap.check("dfsctl without a secret is told the cluster needs one",
          r.returncode != 0 and "UNAUTHENTICATED" in r.stderr and "secret" in r.stderr, r.stderr)
    r = ctl(source, "status", "--json", extra=["--tls-ca", ca, "--secret-file", secret])
    tap.check("dfsctl with the client secret reads status", r.returncode == 0 and "chunkservers" in r.stdout, r.stderr)
    r = ctl(source, "drain", "0123456789abcdef", extra=["--tls-ca", ca, "--secret-file", secret])
    tap.check("the client secret cannot drain a node (PERMISSION_DENIED)",
          r.returncode != 0 and "PERMISSION_DENIED" in r.stderr, r.stderr)
    r = ctl(source, "fsck", "/", extra=["--tls-ca", ca, "--secret-file", secret])
    tap.check("the client secret cannot Stat chunks on a chunkserver (fsck refused)",
          r.returncode != 0 and "PERMISSION_DENIED" in (r.stdout + r.stderr), r.stdout + r.stderr)
    r = ctl(source, "fsck", "/", config=conf)
    tap.check("the cluster key (dfsctl --config from local-cluster) runs fsck", r.returncode == 0, r.stdout + r.stderr)

    m2 = os.path.join(base, "m-nosecret")
    r = mount(source, m2, f"tls_ca={ca}")
    tap.check("a mount without the secret exits non-zero saying it was refused",
          r.returncode != 0 and "refused this client" in r.stderr and "secret" in r.stderr and not os.path.ismount(m2),
          r.stderr)
    wrong = os.path.join(base, "wrong.secret")
    with open(wrong, "w") as f:
        f.write("not-the-secret-of-this-cluster\n")
    r = mount(source, m2, f"tls_ca={ca},secret_file={wrong}")
    tap.check("a mount with a wrong secret is refused", r.returncode != 0 and "refused" in r.stderr, r.stderr)
    r = mount(source, m2, f"secret_file={secret}", timeout="3s")
    tap.check("a plaintext mount of a TLS cluster fails and hints at tls_ca",
          r.returncode != 0 and "tls_ca" in r.stderr, r.stderr)

    # Subdirectory mounts.
    os.makedirs(os.path.join(mnt, "projects", "a", "inner"))
    with open(os.path.join(mnt, "projects", "a", "file"), "w") as f:
        f.write("in a\n")
    with open(os.path.join(mnt, "secret-at-root"), "w") as f:
        f.write("top\n")
    sub = os.path.join(base, "sub")
    r = mount(f"{source}:/projects/a", sub, options)
    if tap.check("SOURCE:/projects/a mounts", r.returncode == 0, r.stderr):
        tap.check("the subdir mount shows only that directory", sorted(os.listdir(sub)) == ["file", "inner"],
              os.listdir(sub))
        tap.check("'..' at the subdir mount's root is the local parent folder",
              os.path.samefile(os.path.join(sub, ".."), base) and
              not os.path.exists(os.path.join(sub, "..", "secret-at-root")))
        tap.check("'..' inside the subdir mount leads back to its root, not above",
              os.path.samefile(os.path.join(sub, "inner", ".."), sub) and
              os.stat(sub).st_ino == 1)
        with open(os.path.join(sub, "new"), "w") as f:
            f.write("made in the subdir mount\n")
        tap.check("a file made in the subdir mount is in /projects/a",
              os.path.exists(os.path.join(mnt, "projects", "a", "new")))
        unmount(sub)
    r = mount(f"{source}:/no/such/dir", sub, options)
    tap.check("a subdir that does not exist is refused", r.returncode != 0 and "no/such/dir" in r.stderr, r.stderr)
    r = mount(f"{source}:/projects/../etc", sub, options)
    tap.check("a subdir with '..' is refused as bad usage", r.returncode == 2, r.stderr)

    # Read-only.
    ro = os.path.join(base, "ro")
    r = mount(source, ro, options + ",ro")
    if tap.check("-o ro mounts", r.returncode == 0, r.stderr):
        with open(os.path.join(ro, "hello.txt"), "rb") as f:
            tap.check("the read-only mount reads", f.read() == data)
        tap.check("writing on the read-only mount is EROFS",
              errno_of(lambda: open(os.path.join(ro, "x"), "w")) == errno.EROFS)
        tap.check("mkdir on the read-only mount is EROFS", errno_of(lambda: os.mkdir(os.path.join(ro, "d"))) == errno.EROFS)
        unmount(ro)

    # Root squash.
    os.makedirs(os.path.join(mnt, "open"), exist_ok=True)
    os.chmod(os.path.join(mnt, "open"), 0o777)
    os.makedirs(os.path.join(mnt, "closed"), exist_ok=True)
    os.chmod(os.path.join(mnt, "closed"), 0o755)
    sq = os.path.join(base, "squash")
    r = mount(source, sq, options + ",root_squash")
    if tap.check("-o root_squash mounts", r.returncode == 0, r.stderr):
        tap.check("squashed root cannot create in a 0755 root-owned directory (EACCES)",
              errno_of(lambda: open(os.path.join(sq, "closed", "x"), "w")) == errno.EACCES)
        with open(os.path.join(sq, "open", "mine"), "w") as f:
            f.write("x")
        st = os.stat(os.path.join(mnt, "open", "mine"))
        tap.check("a file squashed root creates belongs to 65534:65534", (st.st_uid, st.st_gid) == (65534, 65534),
              (st.st_uid, st.st_gid))
        tap.check("squashed root still reads world-readable files",
              open(os.path.join(sq, "hello.txt"), "rb").read(16) == data[:16])
        unmount(sq)
    down(d)


def test_mtls_cluster(base):
    d = os.path.join(base, "b")
    r, info = up(d, "--mtls", "--mount", os.path.join(d, "mnt"))
    if not tap.check("local-cluster up --mtls starts and mounts with the client certificate",
                 r.returncode == 0 and "mount" in info, r.stdout + r.stderr):
        return
    source, mnt = info["source"], info["mount"]
    t = os.path.join(d, "tls")
    path = os.path.join(mnt, "f")
    with open(path, "wb") as f:
        f.write(b"mutual" * 1000)
    with open(path, "rb") as f:
        tap.check("the mutual-TLS mount writes and reads", f.read() == b"mutual" * 1000)

    m = os.path.join(base, "m-nocert")
    r = mount(source, m, f"tls_ca={t}/ca.pem")
    tap.check("a mount without a certificate exits non-zero: the cluster wants one",
          r.returncode != 0 and "certificate" in r.stderr and not os.path.ismount(m), r.stderr)
    ca = ["--tls-ca", f"{t}/ca.pem"]
    r = ctl(source, "status", extra=ca + ["--tls-cert", f"{t}/client.pem", "--tls-key", f"{t}/client.key"])
    tap.check("the client certificate reads status", r.returncode == 0, r.stderr)
    r = ctl(source, "drain", "0123456789abcdef",
            extra=ca + ["--tls-cert", f"{t}/client.pem", "--tls-key", f"{t}/client.key"])
    tap.check("the client certificate cannot drain a node", r.returncode != 0 and "PERMISSION_DENIED" in r.stderr,
          r.stderr)
    r = ctl(source, "fsck", "/", extra=ca + ["--tls-cert", f"{t}/node.pem", "--tls-key", f"{t}/node.key"])
    tap.check("the node certificate runs fsck (admin)", r.returncode == 0, r.stdout + r.stderr)
    # Last: right after a client with another CA's certificate was refused,
    # a good client's first TLS handshake has twice (of ~8 runs) not finished
    # within 15 s ("tcp handshaker shutdown"); under investigation, see the
    # session note. Kept out of the way of the other checks meanwhile.
    other = os.path.join(base, "other-ca")
    run([MAKE_CERTS, other], timeout=60)
    r = mount(source, m, f"tls_ca={t}/ca.pem,tls_cert={other}/client.pem,tls_key={other}/client.key", timeout="3s")
    tap.check("a certificate from another CA is refused", r.returncode != 0 and not os.path.ismount(m), r.stderr)

    down(d)


def main():
    if not os.path.exists("/dev/fuse"):
        print("1..0 # SKIP no /dev/fuse")
        return 0
    base = tempfile.mkdtemp(prefix="dfs-security-")
    try:
        test_tls_cluster(base)
        test_mtls_cluster(base)
    finally:
        for m in list(mounts):
            unmount(m)
        down(os.path.join(base, "a"))
        down(os.path.join(base, "b"))
        run(["rm", "-rf", base], timeout=60)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
