"""TAP output and small waits for the Python integration tests (metrics,
security): one place for what every such script needs.

    import tap
    tap.check("what", ok, detail)   # prints "ok N - what" / "not ok N - what" + detail
    tap.finish()                    # prints the plan "1..N"; returns the exit code
"""

import os
import random
import socket
import sys
import time

checks = 0
failures = 0


def check(what, ok, detail="", detail_lines=40):
    """Records one check; on failure prints up to `detail_lines` of `detail`."""
    global checks, failures
    checks += 1
    print(f"{'ok' if ok else 'not ok'} {checks} - {what}")
    if not ok:
        failures += 1
        for line in str(detail).splitlines()[:detail_lines]:
            print(f"#   {line}")
    sys.stdout.flush()
    return ok


def finish():
    """Prints the plan; 1 if any check failed, else 0."""
    print(f"1..{checks}")
    sys.stdout.flush()
    return 1 if failures else 0


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now, below the kernel's
    ephemeral range (32768-60999), where an outgoing connection could take it
    before its daemon binds it; never the same twice in one run, and
    reserved against other test programs for a while (reserve_port)."""
    for _ in range(2000):
        port = random.randint(20000, 32000)
        if port in _given_ports:
            continue
        with socket.socket() as s:
            # As the daemons bind: TIME_WAIT leftovers do not hold a port.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if not reserve_port(port):
            continue
        _given_ports.add(port)
        return port
    raise RuntimeError("no free port in 20000-32000")


_given_ports = set()

RESERVATION_DIR = "/tmp/dfs-port-reservations"
RESERVATION_S = 120


def reserve_port(port):
    """Claims `port` machine-wide for RESERVATION_S: meson runs test programs
    side by side, and a port picked free stays unbound until its daemon
    starts, so another program's check would find it free too. The same
    files and age as tests/harness/process.cc and packaging/local-cluster."""
    os.makedirs(RESERVATION_DIR, mode=0o1777, exist_ok=True)
    path = os.path.join(RESERVATION_DIR, str(port))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        return True
    except FileExistsError:
        try:
            if time.time() - os.stat(path).st_mtime < RESERVATION_S:
                return False
            os.utime(path)
            return True
        except OSError:
            return False


def wait_for(predicate, timeout_s, interval_s=0.2):
    """Polls `predicate` until true or `timeout_s` passed; its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
