"""A host name lookup that never gets an answer, under the RabbitMQ transport (SilentDnsTest in
src/transport/rabbitmq/rabbitmq_stuck_peer_test.cpp): bounded by ASYA_RABBITMQ_RPC_TIMEOUT, and cut
short by a stop.

A lookup that hangs cannot be made on the machine's own resolver, so the gtest binary runs in a
user, mount and network namespace of its own (`unshare`, no privileges needed where user
namespaces are allowed): only the loopback interface, and an /etc/resolv.conf (bind-mounted over
the real one, in that namespace only) that names 127.0.0.1 with the resolver's longest timeouts.
The test binds 127.0.0.1:53 itself and never answers, so glibc's getaddrinfo() waits for minutes.
No broker is needed.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

HELPER = r"""
import fcntl, os, socket, struct, subprocess, sys
# Loopback up (SIOCGIFFLAGS / SIOCSIFFLAGS | IFF_UP): the network namespace starts with it down.
s = socket.socket()
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH22x", b"lo", 0))[:18])[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 1))
subprocess.run(["mount", "--bind", sys.argv[1], "/etc/resolv.conf"], check=True)
os.environ["ASYA_TEST_SILENT_DNS"] = "1"
sys.exit(subprocess.run(sys.argv[2:]).returncode)
"""


def gtest_binary(build_path):
    path = build_path / "src" / "transport" / "rabbitmq" / "transport_rabbitmq_test"
    if not path.exists():
        pytest.fail("%s is missing: build it first (ninja transport_rabbitmq_test)" % path)
    return path


def namespaces_allowed():
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "--net", "true"],
                           capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not namespaces_allowed(),
                                reason="unshare --user --mount --net is not allowed here")


def test_a_lookup_without_answer_is_bounded_and_cut_short_by_a_stop(build_path):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="asya-dns-", dir="/tmp"))
    try:
        resolv = tmp / "resolv.conf"
        # glibc's longest: 30 s per try, 5 tries, for the A and the AAAA query.
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:30 attempts:5\n")
        helper = tmp / "helper.py"
        helper.write_text(HELPER)
        proc = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "--net", sys.executable,
             str(helper), str(resolv), str(gtest_binary(build_path)),
             "--gtest_filter=SilentDnsTest.*", "--gtest_brief=0"],
            capture_output=True, text=True, timeout=600, env=dict(os.environ))
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, "gtest failed (exit %d):\n%s" % (proc.returncode,
                                                                     output[-20000:])
        assert "[  PASSED  ] 2 tests" in output, output[-5000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
