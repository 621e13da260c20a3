"""A throw-away moto server (SQS and S3 APIs) for tests, standard library only.

moto lives in the Python on PATH (pyenv), not in the interpreter that runs pytest, so it is started
as a subprocess of that Python (`python3 -m moto.server`), on a free port, in its own session:

    with moto.server() as m:       # or m = moto.Moto(); m.start(); ...; m.stop()
        m.endpoint                  # http://127.0.0.1:<port>
        m.env()                     # AWS_* and ASYA_*_ENDPOINT variables for Asya processes

Waiting is done by polling the port with an HTTP request until moto answers, with a deadline.
Stopping sends SIGTERM to the server's process group and SIGKILL if it does not exit.

    python3 tests/services/moto.py          # runs one until Ctrl-C, printing the endpoint

moto checks S3 object ACLs, so reading an object needs a signed request: s3_request() signs one
with SigV4 (standard library only; path-style URL, path sent exactly as given).
"""
import contextlib
import datetime
import hashlib
import hmac
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request


class MotoError(RuntimeError):
    pass


try:
    from services.ports import free_port
except ImportError:  # run as a script, or imported with tests/services on sys.path (bench/run)
    from ports import free_port


def python_with_moto():
    """The first python3 that can import moto: $ASYA_MOTO_PYTHON, then `python3` on PATH (pyenv),
    then this interpreter. None when there is none."""
    candidates = [os.environ.get("ASYA_MOTO_PYTHON"), shutil.which("python3"), sys.executable]
    for python in candidates:
        if not python:
            continue
        try:
            proc = subprocess.run([python, "-c", "import moto.server"], capture_output=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0:
            return python
    return None


def available():
    return python_with_moto() is not None


# Credentials moto accepts (it does not check them) and the region used everywhere in tests.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


class Moto:
    def __init__(self):
        self.port = None
        self.process = None
        self.log_path = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def env(self):
        """Variables that point Asya's SQS transport and S3 result store at this server."""
        env = dict(CREDENTIALS)
        env["ASYA_SQS_ENDPOINT"] = self.endpoint
        env["ASYA_S3_ENDPOINT"] = self.endpoint
        return env

    def start(self, timeout=60):
        python = python_with_moto()
        if python is None:
            raise MotoError("no python3 with moto found (tried $ASYA_MOTO_PYTHON, python3 on PATH, "
                            "%s): install moto[server] for the python3 on PATH" % sys.executable)
        self.port = free_port()
        fd, self.log_path = tempfile.mkstemp(prefix="asya-moto-", suffix=".log")
        log = os.fdopen(fd, "wb")
        env = dict(os.environ)
        env.update(CREDENTIALS)
        self.process = subprocess.Popen(
            [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                out = self.output()
                self.stop()
                raise MotoError("moto server exited with %s before answering; log:\n%s" %
                                (self.process.returncode, out[-3000:]))
            if time.monotonic() > deadline:
                out = self.output()
                self.stop()
                raise MotoError("moto server on port %d did not answer within %ds; log:\n%s" %
                                (self.port, timeout, out[-3000:]))
            time.sleep(0.1)
        return self

    def _answers(self):
        # moto's dashboard/reset API answers without credentials once the server is up.
        try:
            with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means the server is up
        except OSError:
            return False

    def reset(self):
        """Deletes every queue, bucket and message (moto's reset API)."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def output(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def stop(self, timeout=10):
        """Stops the server and its children. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        if self.log_path:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)
            self.log_path = None


def s3_request(method, url, body=b"", credentials=CREDENTIALS):
    """Sends a SigV4-signed S3 request; returns (status, body bytes). `url` is path-style and
    already percent-encoded (it is signed exactly as sent)."""
    parts = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    query = "&".join(sorted(q if "=" in q else q + "=" for q in parts.query.split("&") if q))
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, parts.path or "/", query,
                           "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers)),
                           signed, payload_hash])
    region = credentials["AWS_REGION"]
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + credentials["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        credentials["AWS_ACCESS_KEY_ID"], scope, signed, signature)
    del headers["host"]
    req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@contextlib.contextmanager
def server():
    """Starts a moto server, yields it, and stops it afterwards (also on failure)."""
    m = Moto()
    m.start()
    try:
        yield m
    finally:
        m.stop()


if __name__ == "__main__":
    with server() as m:
        print(m.endpoint, flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
