"""A real PostgreSQL 15 for tests: initdb in a temp directory, a free port, trust authentication,
fsync off; stopped and removed on exit. Used by the gateway's job-store suites and the join store
suites (standard library only).

    with postgres.server() as url:      # postgresql://asya@127.0.0.1:<port>/asya
        other = postgres.fresh_database(url)   # a new empty database on the same server
"""
import contextlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import uuid

try:
    from services.ports import free_port
except ImportError:  # run as a script, or imported with tests/services on sys.path (bench/run)
    from ports import free_port

PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    return (PG_BIN / "initdb").exists()


def _free_port() -> int:
    return free_port()


def _as_postgres(args, **kwargs):
    """Runs a PostgreSQL binary as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


@contextlib.contextmanager
def server():
    """Starts a server and yields the URL of its database `asya` (user asya, no password)."""
    if not available():
        raise RuntimeError(f"PostgreSQL 15 not installed at {PG_BIN} (./scripts/setup installs it)")
    base = pathlib.Path(tempfile.mkdtemp(prefix="asya-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "asya", "--auth=trust", "-E", "UTF8"])
    _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o",
                  f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c max_connections=200", "start"])
    try:
        _as_postgres([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "asya", "asya"])
        yield f"postgresql://asya@127.0.0.1:{port}/asya"
    finally:
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


def psql(url, sql):
    """Runs `sql` with psql; raises with psql's message when it fails."""
    result = subprocess.run([str(PG_BIN / "psql"), url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"psql {sql!r}: {result.stderr}")
    return result.stdout


def fresh_database(url, prefix="t_"):
    """Creates an empty database on `url`'s server; returns its URL."""
    name = prefix + uuid.uuid4().hex[:12]
    psql(url, f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name
