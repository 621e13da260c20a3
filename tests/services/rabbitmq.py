"""A throw-away RabbitMQ broker for tests: started from the Debian `rabbitmq-server` package with
its own data and log directories, node name and ports, so several can run next to each other and
next to a system broker.

    with rabbitmq.broker() as b:          # or b = rabbitmq.Broker(); b.start(); ...; b.stop()
        b.url                              # amqp://guest:guest@127.0.0.1:<port>/%2F
        b.new_vhost()                      # the URL of a fresh, empty vhost on it
        b.restart()                        # stop the node and start it again on the same data
        b.kill(); b.start()                # a crash (SIGKILL), then recovery on the same data

Everything a broker needs to be restarted lives in its directory (`broker.json`), so another
process can restart it too (the C++ restart test does, through the command line):

    python3 tests/services/rabbitmq.py restart <dir>
    python3 tests/services/rabbitmq.py start|stop <dir>

Waiting is done with `rabbitmqctl -n <node> await_startup`, retried with a deadline: right after
the server starts, the first call can exit 69 because the node has not registered with epmd yet.
"""
import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

try:
    from services.ports import free_port
except ImportError:  # run as a script, or imported with tests/services on sys.path (bench/run)
    from ports import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
STATE_FILE = "broker.json"
# How many vhosts new_vhost() creates with one rabbitmqctl call (see there).
VHOST_BATCH = 12


class BrokerError(RuntimeError):
    pass




def available():
    """True when the rabbitmq-server package is installed."""
    return os.path.exists(SERVER) and os.path.exists(CTL)


class Broker:
    """One RabbitMQ node. `directory` holds its data, logs and broker.json; a new temporary
    directory is made when it is None."""

    def __init__(self, directory=None, management=False):
        self._spare_vhosts = []
        if directory is not None and (pathlib.Path(directory) / STATE_FILE).exists():
            self.dir = pathlib.Path(directory)
            self.state = json.loads((self.dir / STATE_FILE).read_text())
            return
        self.dir = pathlib.Path(directory or tempfile.mkdtemp(prefix="asya-rmq-", dir="/tmp"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = {
            "node": "asya-test-%s@localhost" % uuid.uuid4().hex[:12],
            "port": free_port(),
            "dist_port": free_port(),
            "management_port": free_port() if management else 0,
        }
        (self.dir / STATE_FILE).write_text(json.dumps(self.state))

    @property
    def node(self):
        return self.state["node"]

    @property
    def port(self):
        return self.state["port"]

    @property
    def url(self):
        return "amqp://guest:guest@127.0.0.1:%d/%%2F" % self.port

    @property
    def management_url(self):
        port = self.state.get("management_port") or 0
        return "http://guest:guest@127.0.0.1:%d" % port if port else ""

    def _env(self):
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("RABBITMQ_"):
                del env[key]
        config = self.dir / "rabbitmq.conf"
        lines = [
            "listeners.tcp.default = 127.0.0.1:%d" % self.port,
            "loopback_users = none",
            # Test machines are small and shared: do not refuse publishes for low disk or memory.
            "disk_free_limit.absolute = 1MB",
            "vm_memory_high_watermark.relative = 0.9",
        ]
        plugins = "[]."
        if self.state.get("management_port"):
            lines.append("management.tcp.port = %d" % self.state["management_port"])
            lines.append("management.tcp.ip = 127.0.0.1")
            plugins = "[rabbitmq_management]."
        config.write_text("\n".join(lines) + "\n")
        (self.dir / "enabled_plugins").write_text(plugins + "\n")
        env.update({
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.state["dist_port"]),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "HOME": os.environ.get("HOME", "/root"),
        })
        return env

    def ctl(self, *args, timeout=60, check=True):
        proc = subprocess.run([CTL, "-n", self.node, *args], env=self._env(), capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise BrokerError("rabbitmqctl -n %s %s exited %d: %s%s" % (
                self.node, " ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def start(self, timeout=120):
        """Starts the node and returns once it accepts AMQP connections."""
        if not available():
            raise BrokerError("%s is missing: run scripts/setup (Debian package rabbitmq-server)" %
                              SERVER)
        log = open(self.dir / "server.out", "ab")
        # A new session: the broker outlives the process that started it (restart from the CLI)
        # and is stopped with `rabbitmqctl stop`, never by signalling a process group.
        subprocess.Popen([SERVER], env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(self.dir))
        log.close()
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerError("RabbitMQ node %s did not start within %ds: %s\n--- server.out:\n%s"
                                  % (self.node, timeout, last, self.server_output()[-3000:]))
            try:
                proc = self.ctl("await_startup", "--timeout", str(max(1, int(min(left, 30)))),
                                timeout=left + 10, check=False)
            except subprocess.TimeoutExpired:
                continue
            if proc.returncode == 0 and self._accepts_connections():
                return self
            last = "await_startup exited %d: %s%s" % (proc.returncode, proc.stdout, proc.stderr)
            time.sleep(0.5)  # exit 69 right after start: the node is not registered with epmd yet

    def _accepts_connections(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                return True
        except OSError:
            return False

    def new_vhost(self):
        """Creates an empty virtual host that guest may use and returns its amqp URL: tests that
        share one broker each get their own queues.

        Every rabbitmqctl call boots an Erlang VM (1-2 s of CPU, several seconds on a loaded
        machine), and creating a vhost took two of them. So vhosts are made VHOST_BATCH at a time
        with one `import_definitions` call and handed out one per call; each is still used by one
        test only."""
        if not self._spare_vhosts:
            names = ["t-" + uuid.uuid4().hex[:12] for _ in range(VHOST_BATCH)]
            definitions = {
                "vhosts": [{"name": n} for n in names],
                "permissions": [{"user": "guest", "vhost": n, "configure": ".*", "write": ".*",
                                 "read": ".*"} for n in names],
            }
            path = self.dir / ("vhosts-%s.json" % names[0])
            path.write_text(json.dumps(definitions))
            self.ctl("import_definitions", str(path), "--format", "json")
            path.unlink()
            self._spare_vhosts.extend(names)
        name = self._spare_vhosts.pop(0)
        return "amqp://guest:guest@127.0.0.1:%d/%s" % (self.port, urllib.parse.quote(name, safe=""))

    def server_output(self):
        try:
            return (self.dir / "server.out").read_text(errors="replace")
        except OSError:
            return ""

    def running(self):
        return self.ctl("ping", timeout=30, check=False).returncode == 0

    def stop(self, timeout=60):
        """Stops the node (and waits until its process is gone). Safe to call when stopped."""
        pid_file = self.dir / "rabbitmq.pid"
        self.ctl("stop", str(pid_file), timeout=timeout, check=False)
        deadline = time.monotonic() + timeout
        while self._accepts_connections() and time.monotonic() < deadline:
            time.sleep(0.1)

    def kill(self, timeout=60):
        """Kills the node with SIGKILL, as a crash would: nothing is flushed and no connection is
        closed cleanly. Returns once its AMQP port is closed; start() recovers it on the same
        data."""
        pid = int((self.dir / "rabbitmq.pid").read_text().split()[0])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while self._accepts_connections():
            if time.monotonic() > deadline:
                raise BrokerError("RabbitMQ node %s (pid %d) still accepts connections %ds after "
                                  "SIGKILL" % (self.node, pid, timeout))
            time.sleep(0.05)

    def restart(self):
        self.stop()
        self.start()

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def discard(self):
        """Ends a throw-away node for good and deletes its directory. A SIGKILL (when it wrote its
        pid file) instead of `rabbitmqctl stop`: nothing of it is kept, and a clean stop took
        10-15 s on a loaded machine (a CLI VM boot plus the node's shutdown), paid by the last test
        of every pytest worker."""
        if self._pid_is_this_node():
            try:
                self.kill()
            except BrokerError:
                self.stop()
        elif self._accepts_connections():
            self.stop()
        self.remove()

    def _pid_is_this_node(self):
        """True when the pid file names a live process of this node (never a reused pid)."""
        try:
            pid = int((self.dir / "rabbitmq.pid").read_text().split()[0])
            with open("/proc/%d/environ" % pid, "rb") as f:
                return ("RABBITMQ_NODENAME=%s" % self.node).encode() in f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            return False


@contextlib.contextmanager
def broker(management=False):
    """Starts a fresh broker, yields it, and kills and deletes it afterwards (also on failure)."""
    b = Broker(management=management)
    try:
        b.start()
        yield b
    finally:
        b.discard()


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop", "restart", "url"):
        sys.stderr.write("usage: rabbitmq.py start|stop|restart|url DIR\n")
        return 2
    b = Broker(argv[2])
    if argv[1] == "start":
        b.start()
        print(b.url)
    elif argv[1] == "stop":
        b.stop()
    elif argv[1] == "restart":
        b.restart()
    else:
        print(b.url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
