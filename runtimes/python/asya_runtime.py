#!/usr/bin/env python3
"""Asya Python runtime: serves one user handler over the Asya socket protocol.

Run it as ``python3 asya_runtime.py`` (or ``python3 -m asya_runtime``). It loads the handler named
by ASYA_HANDLER, listens on a Unix socket, creates ``runtime-ready`` next to the socket and answers
requests from the sidecar until SIGTERM/SIGINT. Standard library only; Python 3.8+.

The contract is PROTOCOL.md section 3 (docs/protocol.md in the repository):

* framing: a 4-byte unsigned big-endian length N, then N bytes of UTF-8 JSON, both directions;
* request: one envelope ``{"id", "route": {"actors", "current", "metadata"?}, "headers"?,
  "payload", ...}``;
* response: always a JSON array: outputs ``[{"payload", "route", "headers"?}, ...]``, ``[]`` for
  abort, or one error element ``[{"error": code, "details": {"message", "type", "traceback"}}]``
  with code ``processing_error`` (the handler raised or returned something invalid),
  ``msg_parsing_error`` (the request is not valid JSON or not a valid envelope) or
  ``connection_error`` (the request could not be read completely).

Handlers (see README.md beside this file):

* ``ASYA_HANDLER=module.function`` calls ``function(x)`` for every request;
* ``ASYA_HANDLER=module.Class.method`` instantiates ``Class()`` once at start (every ``__init__``
  parameter must have a default) and calls ``instance.method(x)``.

With ``ASYA_HANDLER_MODE=payload`` (default) ``x`` is the payload and the handler returns a payload
(one output), a list of payloads (fan-out; ``[]`` means abort) or ``None`` (abort); the runtime
builds each output from the input route with ``current + 1`` and the input headers. With
``ASYA_HANDLER_MODE=envelope`` ``x`` is the envelope (``id``, ``parent_id``, ``route``,
``headers``, ``deadline`` and ``payload`` where present) and the handler returns an envelope or a
list of envelopes; it may change the route's future but never its past (checked unless
``ASYA_ENABLE_VALIDATION=false``). A handler may be ``async def``; its coroutine is run to
completion on a per-thread event loop.

With ``ASYA_HANDLER_BATCH=true`` (set by a manifest's ``spec.batching``) the handler is a batch
handler: it gets a list of payloads (or of envelopes in envelope mode) and returns a list of the
same length, one slot per input in order: a payload, a list (fan-out), ``None`` (abort) or an
exception instance (that item alone fails with its type, message and traceback). A handler that
raises fails every item; a result of the wrong length fails every item naming both lengths. The
runtime then declares batch support with a line ``batch`` in its ready file and answers batch
requests (a JSON array of envelopes) with one answer per envelope (PROTOCOL.md section 3); a single
envelope request is handled as a batch of one.

Environment:

==========================  =================================================================
ASYA_HANDLER                required: ``module.function`` or ``module.Class.method``
ASYA_HANDLER_MODE           ``payload`` (default) or ``envelope``
ASYA_HANDLER_BATCH          true: a batch handler (list in, list of the same length out)
ASYA_SOCKET_PATH            socket path (default /var/run/asya/asya-runtime.sock)
ASYA_SOCKET_DIR             used when ASYA_SOCKET_PATH is unset: ASYA_SOCKET_DIR/ASYA_SOCKET_NAME
ASYA_SOCKET_NAME            default ``asya-runtime.sock``
ASYA_SOCKET_CHMOD           octal permissions for the socket (default 0o666; empty: no chmod)
ASYA_ENABLE_VALIDATION      check envelope-mode outputs (default true)
ASYA_MAX_MESSAGE_BYTES      largest request frame accepted (default 256MiB; 1048576, 64KiB, 1GiB)
ASYA_HANDLER_THREAD_SAFE    true: run handler calls of concurrent connections in parallel;
                            false (default): one handler call at a time
ASYA_RUNTIME_SPIN_US        batch mode: after an answer, wait this long for the next request
                            without sleeping when requests come back to back (default 2000; 0:
                            always sleep); see "Waiting for the next batch" below
ASYA_PAYLOAD_UNCHANGED      true (default): answer "payload_unchanged" for a payload returned
                            unchanged (below); false: always send the payload back
ASYA_LOG_LEVEL              debug, info (default), warn/warning, error
==========================  =================================================================

Payloads returned unchanged: when a payload-mode handler returns the very object it received
(``return payload``) and that object is immutable (a str, int, float or bool), the runtime answers
``"payload_unchanged": true`` instead of sending the payload back, and the sidecar forwards the
payload as it received it (a large payload's reference again, nothing stored twice). Only for a
sidecar that declared it takes that answer (its ``sidecar-features`` file next to the socket,
checked once per connection against the connection's peer; PROTOCOL.md section 3). A dict or list
is always sent whole: the handler may have changed it in place. Batch mode does the same per item.

Waiting for the next batch: on a saturated queue the sidecar sends the next batch a fraction of
a millisecond after each answer. A thread that sleeps for that gap is woken on whichever core is
idle, so the model's next batch runs on the other core with cold caches (about 25 % slower per
batch on a 2-core machine, docs/performance.md "Batching"). In batch mode the connection's
thread therefore polls for the next request without sleeping for up to ASYA_RUNTIME_SPIN_US after
an answer, but only while the previous request came within that time (a queue that is not
saturated never costs a spin after its first gap). A new connection ends the spin as well.
With a sidecar that sends its next batch ahead on a second connection (``pipeline`` in the ready
file, PROTOCOL.md section 3) the next request is already there: while several connections are
open, a batch runtime (handler not declared thread-safe) runs every handler call on one handler
thread, which goes from one batch to the next without sleeping; the connection threads read,
decode, encode and answer. In batch
mode the leader also looks for a connecting client once it has read a request, before the
handler call, so a connection opened meanwhile is not kept in the backlog for a whole batch.

The working directory goes first on sys.path, and a handler module of the working directory or
PYTHONPATH wins over an already imported module of the same name (a handler file named
tokenize.py); the "runtime ready" log line names the handler's file. ``asya_runtime.testing``
(defined in this file) calls a handler exactly as the runtime would, for unit tests.

``--help`` prints this text and ``--version`` the version (``asya-runtime 0.1.0``); both exit 0
without loading a handler or opening a socket.

``python3 asya_runtime.py --check`` only reads the configuration and imports and resolves the
handler (a class handler is not created), prints ``{"asya_check": {"ok", "handler", "module",
"file", "error"?}}`` on stdout and exits 0 or 2: ``asya up`` runs it for every actor before it
starts anything.

Start-up problems (bad configuration, a handler that cannot be loaded, a socket path that cannot
be used) print one JSON log line naming the problem on stderr and exit with status 1. SIGTERM or
SIGINT stops accepting, lets requests already being processed finish (a second signal cuts that
short), removes the socket and the ready file and exits 0.

Logs are JSON lines on stderr (``{"ts","level","component":"runtime","msg",...}``), like the rest
of Asya. Payloads are never logged at info or above and nothing is logged per request at info
level; a failing handler is logged at warn with the envelope id and exception type, its message
(which may quote the payload) only at debug.
"""

import asyncio
import collections
import inspect
import importlib
import importlib.machinery
import importlib.util
import json
import os
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
import types

__version__ = "0.1.0"  # the project's version (CMakeLists.txt); pyproject.toml reads it from here

__all__ = [
    "Config",
    "ConfigError",
    "HandlerLoadError",
    "InvalidRequest",
    "InvalidHandlerResult",
    "Runtime",
    "build_payload_outputs",
    "check_envelope_outputs",
    "error_response",
    "handle_request",
    "HandlerError",
    "call_batch",
    "call_envelope",
    "call_payload",
    "check",
    "payloads",
    "resolve_handler",
    "testing",
    "load_config",
    "load_handler",
    "main",
    "parse_bool",
    "parse_bytes",
    "parse_request",
]

DEFAULT_SOCKET_PATH = "/var/run/asya/asya-runtime.sock"
DEFAULT_SOCKET_NAME = "asya-runtime.sock"
READY_FILE_NAME = "runtime-ready"
SIDECAR_FEATURES_FILE_NAME = "sidecar-features"
PAYLOAD_UNCHANGED_FEATURE = "payload-unchanged"
# Payloads that a handler returning the very object it got cannot have changed (PROTOCOL.md
# section 3, "payload_unchanged"). None is abort, so it is not among them.
_UNCHANGEABLE_TYPES = (str, int, float, bool)
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
DEFAULT_SPIN_US = 2000
_MAX_SPIN_US = 1_000_000
DEFAULT_SOCKET_CHMOD = "0o666"

PROCESSING_ERROR = "processing_error"
MSG_PARSING_ERROR = "msg_parsing_error"
CONNECTION_ERROR = "connection_error"

# Each connection thread reads requests into one buffer of this size that it reuses; a larger
# request grows it, up to _KEPT_BUFFER_BYTES (kept for the next requests, as fresh megabyte
# buffers cost page faults on every request); larger requests get a buffer of their own, sized
# exactly, that is dropped after the request.
_REUSED_BUFFER_BYTES = 64 * 1024
_KEPT_BUFFER_BYTES = 4 * 1024 * 1024
# Connection threads kept waiting for work after a burst of concurrent connections.
_MAX_IDLE_WORKERS = 4

_HEADER = struct.Struct(">I")
# recv flags as plain ints: an IntFlag `|` costs a few enum calls per request in Python 3.11.
_DONTWAIT = int(socket.MSG_DONTWAIT)
_PEEK_DONTWAIT = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)
_PEEK = int(socket.MSG_PEEK)
_MAX_FRAME_BYTES = 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Logging: JSON lines on stderr.

_LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}
_LEVEL_NAMES = {10: "debug", 20: "info", 30: "warn", 40: "error"}


class _Log:
    """Minimal JSON-lines logger (the logging module is slower and its format differs)."""

    def __init__(self):
        self.level = 20
        self._lock = threading.Lock()

    def enabled(self, level):
        return level >= self.level

    def write(self, level, msg, **fields):
        if level < self.level:
            return
        now = time.time()
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000),
            "level": _LEVEL_NAMES[level],
            "component": "runtime",
            "msg": msg,
        }
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    def debug(self, msg, **fields):
        self.write(10, msg, **fields)

    def info(self, msg, **fields):
        self.write(20, msg, **fields)

    def warn(self, msg, **fields):
        self.write(30, msg, **fields)

    def error(self, msg, **fields):
        self.write(40, msg, **fields)


log = _Log()


# --------------------------------------------------------------------------------------------
# Configuration.


class ConfigError(Exception):
    """A start-up problem; its message is the one line the runtime prints before exiting 1."""


class HandlerLoadError(ConfigError):
    """ASYA_HANDLER cannot be turned into a callable."""


class Config(object):
    """Runtime settings, read from the environment by load_config()."""

    __slots__ = (
        "handler",
        "mode",
        "socket_path",
        "socket_chmod",
        "enable_validation",
        "max_message_bytes",
        "handler_thread_safe",
        "log_level",
        "batch",
        "spin_us",
        "payload_unchanged",
    )

    def __init__(
        self,
        handler="",
        mode="payload",
        socket_path=DEFAULT_SOCKET_PATH,
        socket_chmod=0o666,
        enable_validation=True,
        max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
        handler_thread_safe=False,
        log_level="info",
        batch=False,
        spin_us=DEFAULT_SPIN_US,
        payload_unchanged=True,
    ):
        self.handler = handler
        self.mode = mode
        self.socket_path = socket_path
        self.socket_chmod = socket_chmod  # int, or None to leave the permissions alone
        self.enable_validation = enable_validation
        self.max_message_bytes = max_message_bytes
        self.handler_thread_safe = handler_thread_safe
        self.log_level = log_level
        self.batch = batch
        self.spin_us = spin_us  # batch mode only (Server)
        self.payload_unchanged = payload_unchanged

    @property
    def sidecar_features_path(self):
        return os.path.join(os.path.dirname(self.socket_path) or ".", SIDECAR_FEATURES_FILE_NAME)

    @property
    def ready_path(self):
        return os.path.join(os.path.dirname(self.socket_path) or ".", READY_FILE_NAME)


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def parse_bool(name, text):
    """Reads a boolean setting (true/false/1/0/yes/no/on/off, any case); raises ConfigError."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError('%s="%s" is not a boolean: use true or false' % (name, text))


_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "kib": 1 << 10,
    "ki": 1 << 10,
    "mib": 1 << 20,
    "mi": 1 << 20,
    "gib": 1 << 30,
    "gi": 1 << 30,
    "kb": 1000,
    "k": 1000,
    "mb": 1000 ** 2,
    "m": 1000 ** 2,
    "gb": 1000 ** 3,
    "g": 1000 ** 3,
}


def parse_bytes(name, text):
    """Reads a byte size: "1048576", "64KiB", "256MiB", "1GiB" (KB/MB/GB are powers of 1000)."""
    value = text.strip()
    digits = 0
    while digits < len(value) and value[digits].isdigit():
        digits += 1
    unit = value[digits:].strip().lower()
    if digits == 0 or unit not in _BYTE_UNITS or not value[:digits].isascii():
        raise ConfigError(
            '%s="%s" is not a byte size: use a number of bytes or KiB/MiB/GiB (e.g. 256MiB)' % (name, text)
        )
    return int(value[:digits]) * _BYTE_UNITS[unit]


def _parse_chmod(text):
    value = text.strip().lower()
    if not value:
        return None
    digits = value[2:] if value.startswith("0o") else value
    try:
        mode = int(digits, 8)
    except ValueError:
        mode = -1
    if not digits or mode < 0 or mode > 0o7777:
        raise ConfigError('ASYA_SOCKET_CHMOD="%s" is not an octal file mode: use e.g. 0o666 or 660, or empty '
                          "to leave the socket's permissions alone" % text)
    return mode


def load_config(environ):
    """Builds a Config from an environment mapping; raises ConfigError naming the bad variable."""
    handler = environ.get("ASYA_HANDLER", "").strip()
    if not handler:
        raise ConfigError("ASYA_HANDLER is not set: set it to module.function or module.Class.method")

    mode = environ.get("ASYA_HANDLER_MODE", "").strip() or "payload"
    if mode not in ("payload", "envelope"):
        raise ConfigError('ASYA_HANDLER_MODE="%s" is not valid: use payload or envelope' % mode)

    socket_path = environ.get("ASYA_SOCKET_PATH", "")
    if not socket_path:
        socket_dir = environ.get("ASYA_SOCKET_DIR", "")
        if socket_dir:
            socket_path = os.path.join(socket_dir, environ.get("ASYA_SOCKET_NAME", "") or DEFAULT_SOCKET_NAME)
        else:
            socket_path = DEFAULT_SOCKET_PATH
    # sun_path holds 108 bytes including the terminating NUL.
    if len(os.fsencode(socket_path)) > 107:
        raise ConfigError(
            'socket path "%s" is %d bytes long: Unix socket paths are limited to 107 bytes; use a shorter '
            "ASYA_SOCKET_PATH or ASYA_SOCKET_DIR" % (socket_path, len(os.fsencode(socket_path)))
        )

    chmod_text = environ.get("ASYA_SOCKET_CHMOD")
    socket_chmod = _parse_chmod(DEFAULT_SOCKET_CHMOD if chmod_text is None else chmod_text)

    validation_text = environ.get("ASYA_ENABLE_VALIDATION", "")
    enable_validation = parse_bool("ASYA_ENABLE_VALIDATION", validation_text) if validation_text.strip() else True

    size_text = environ.get("ASYA_MAX_MESSAGE_BYTES", "")
    max_message_bytes = (
        parse_bytes("ASYA_MAX_MESSAGE_BYTES", size_text) if size_text.strip() else DEFAULT_MAX_MESSAGE_BYTES
    )
    if max_message_bytes < 1 or max_message_bytes > _MAX_FRAME_BYTES:
        raise ConfigError(
            'ASYA_MAX_MESSAGE_BYTES="%s" is out of range: use 1 byte to 4GiB-1 (a frame length is 32 bits)'
            % size_text
        )

    thread_safe_text = environ.get("ASYA_HANDLER_THREAD_SAFE", "")
    handler_thread_safe = (
        parse_bool("ASYA_HANDLER_THREAD_SAFE", thread_safe_text) if thread_safe_text.strip() else False
    )

    batch_text = environ.get("ASYA_HANDLER_BATCH", "")
    batch = parse_bool("ASYA_HANDLER_BATCH", batch_text) if batch_text.strip() else False

    spin_text = environ.get("ASYA_RUNTIME_SPIN_US", "").strip()
    spin_us = DEFAULT_SPIN_US
    if spin_text:
        try:
            spin_us = int(spin_text, 10)
        except ValueError:
            spin_us = -1
        if spin_us < 0 or spin_us > _MAX_SPIN_US:
            raise ConfigError(
                'ASYA_RUNTIME_SPIN_US="%s" is not valid: use a whole number of microseconds from 0 (never '
                "spin) to %d" % (spin_text, _MAX_SPIN_US)
            )

    unchanged_text = environ.get("ASYA_PAYLOAD_UNCHANGED", "")
    payload_unchanged = parse_bool("ASYA_PAYLOAD_UNCHANGED", unchanged_text) if unchanged_text.strip() else True

    level = environ.get("ASYA_LOG_LEVEL", "").strip().lower() or "info"
    if level not in _LEVELS:
        raise ConfigError('ASYA_LOG_LEVEL="%s" is not valid: use debug, info, warn or error' % level)

    return Config(
        handler=handler,
        mode=mode,
        socket_path=socket_path,
        socket_chmod=socket_chmod,
        enable_validation=enable_validation,
        max_message_bytes=max_message_bytes,
        handler_thread_safe=handler_thread_safe,
        log_level=level,
        batch=batch,
        spin_us=spin_us,
        payload_unchanged=payload_unchanged,
    )


# --------------------------------------------------------------------------------------------
# Handler loading.


def _is_identifier_path(text):
    parts = text.split(".")
    return len(parts) >= 2 and all(part.isidentifier() and part.isascii() for part in parts)


def _import_module(name, handler_path):
    """Imports `name`; returns None when no such module exists, raises HandlerLoadError when the
    module exists but importing it fails (the error inside it is named)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == name or name.startswith(missing + "."):
            return None
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: importing module '%s' failed: ModuleNotFoundError: %s" % (handler_path, name, exc)
        )
    except BaseException as exc:  # SystemExit or KeyboardInterrupt raised by module code too
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: importing module '%s' failed: %s: %s"
            % (handler_path, name, _type_name(type(exc)), _one_line(exc))
        )


def _one_line(exc):
    text = str(exc).strip().replace("\n", " | ")
    return text if text else repr(exc)


def _check_constructor(cls, handler_path):
    """Every __init__ parameter of a class handler needs a default: the runtime passes none."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if parameter.default is parameter.empty:
                raise HandlerLoadError(
                    "ASYA_HANDLER=%s: %s.__init__ parameter '%s' has no default value: the runtime "
                    "creates the class with no arguments, so every __init__ parameter needs a default"
                    % (handler_path, cls.__name__, parameter.name)
                )


def _instantiate(cls, handler_path):
    """Creates the single instance of a class handler."""
    _check_constructor(cls, handler_path)
    try:
        return cls()
    except BaseException as exc:
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: %s() raised %s: %s" % (handler_path, cls.__name__, _type_name(type(exc)), _one_line(exc))
        )


def _handler_directories():
    """The directories a handler's modules come from: the working directory (the manifest's
    workingDir) and the PYTHONPATH entries, as real paths."""
    directories = [os.getcwd()]
    directories += [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    return [os.path.realpath(directory) for directory in directories]


def _put_working_directory_first():
    """Moves the working directory to the front of sys.path. `python3 asya_runtime.py` puts this
    file's folder first and PYTHONPATH next, and the standard library follows: a handler module
    must win over any module of the same name there (a handler file named tokenize.py)."""
    working_directory = os.getcwd()
    sys.path[:] = [working_directory] + [entry for entry in sys.path if entry not in ("", working_directory)]


def _module_root(spec):
    """The sys.path entry a found module lives in (a package's parent folder)."""
    directory = os.path.dirname(spec.origin)
    if spec.submodule_search_locations is not None:
        directory = os.path.dirname(directory)
    return os.path.realpath(directory)


def _module_file(module):
    return getattr(module, "__file__", None) or "(built in)"


def _load_shadowing_module(name, handler_path):
    """Handles a top-level handler module whose name is already imported from elsewhere.

    The standard library (inspect, linecache, ...) may have imported a module of the same name
    before the handler is loaded, e.g. `tokenize`; importlib would then return that module. When
    the handler's directories hold `name` (found first on sys.path, working directory first), that
    file is executed as the module `name` and replaces the sys.modules entry, so later imports of
    `name` get the handler's module, as sys.path order says; modules that imported the other one
    keep their reference to it. Returns the loaded module, or None when nothing is shadowed (the
    name is not imported yet, is imported from the same file, or the handler's directories do not
    hold it: a handler that names a standard-library module keeps getting it)."""
    existing = sys.modules.get(name)
    if existing is None:
        return None
    try:
        spec = importlib.machinery.PathFinder.find_spec(name, sys.path)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or not spec.origin or spec.loader is None:
        return None
    existing_file = getattr(existing, "__file__", None)
    if existing_file and os.path.realpath(existing_file) == os.path.realpath(spec.origin):
        return None
    if _module_root(spec) not in _handler_directories():
        return None
    log.info(
        "handler module shadows an already imported module of the same name; loading the handler's",
        module=name,
        file=spec.origin,
        shadowed_file=_module_file(existing),
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules[name] = existing
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: importing module '%s' from %s failed: %s: %s"
            % (handler_path, name, spec.origin, _type_name(type(exc)), _one_line(exc))
        )
    return module


def _where_loaded_from(module):
    """' (loaded from FILE)', plus the handler's directories when FILE is not in one of them."""
    module_file = getattr(module, "__file__", None)
    if not module_file:
        return " (a built-in module, not a file in the working directory %s)" % os.getcwd()
    root = os.path.realpath(os.path.dirname(module_file))
    if getattr(module, "__path__", None) is not None and os.path.basename(module_file).startswith("__init__."):
        root = os.path.dirname(root)
    if "." in module.__name__ or root in _handler_directories():
        return " (loaded from %s)" % module_file
    return (
        " (loaded from %s, which is not in the working directory %s or PYTHONPATH: is the handler's file "
        "there, under this name?)" % (module_file, os.getcwd())
    )


def load_handler(handler_path):
    """Resolves ASYA_HANDLER to a callable; raises HandlerLoadError with a one-line reason.

    ``module.function`` (module may be dotted: ``pkg.sub.function``) returns the function;
    ``module.Class.method`` instantiates Class once (no arguments) and returns the bound method.
    The working directory goes first on sys.path; a top-level module of the handler's directories
    wins over an already imported module of the same name (see _load_shadowing_module).
    """
    return resolve_handler(handler_path)[0]


def resolve_handler(handler_path, instantiate=True):
    """load_handler(), returning (callable, module): the module holding the function or class.

    With instantiate=False a class handler is not created (its __init__ may load a model): the
    class's constructor and method are checked, and the unbound method is returned."""
    if not _is_identifier_path(handler_path):
        raise HandlerLoadError(
            'ASYA_HANDLER="%s" is not a handler path: use module.function or module.Class.method '
            "(Python identifiers separated by dots)" % handler_path
        )
    _put_working_directory_first()

    parts = handler_path.split(".")
    obj = _load_shadowing_module(parts[0], handler_path) or _import_module(parts[0], handler_path)
    if obj is None:
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: no module named '%s' (searched sys.path: %s); put the handler's folder on "
            "PYTHONPATH" % (handler_path, parts[0], os.pathsep.join(p or "." for p in sys.path))
        )
    index = 1
    # Walk packages and modules; stop at the first attribute that is not a module.
    while index < len(parts) and isinstance(obj, types.ModuleType):
        name = parts[index]
        if hasattr(obj, name):
            attribute = getattr(obj, name)
        else:
            attribute = _import_module(obj.__name__ + "." + name, handler_path)
            if attribute is None:
                raise HandlerLoadError(
                    "ASYA_HANDLER=%s: module '%s'%s has no attribute '%s'"
                    % (handler_path, obj.__name__, _where_loaded_from(obj), name)
                )
        if not isinstance(attribute, types.ModuleType):
            break
        obj = attribute
        index += 1
    module = obj
    if index < len(parts):
        obj = attribute
        index += 1
    owner_path = ".".join(parts[:index])
    rest = parts[index:]

    if isinstance(obj, types.ModuleType):
        raise HandlerLoadError(
            "ASYA_HANDLER=%s names a module, not a function: add the function (module.function) or "
            "class method (module.Class.method)" % handler_path
        )
    if not rest:
        if inspect.isclass(obj):
            raise HandlerLoadError(
                "ASYA_HANDLER=%s names a class: name the method to call, e.g. %s.process" % (handler_path, handler_path)
            )
        if not callable(obj):
            raise HandlerLoadError(
                "ASYA_HANDLER=%s is not callable (it is a %s)" % (handler_path, type(obj).__name__)
            )
        return obj, module
    if not inspect.isclass(obj):
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: '%s' is a %s, not a class, so it has no method '%s'"
            % (handler_path, owner_path, type(obj).__name__, ".".join(rest))
        )
    if len(rest) > 1:
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: expected module.Class.method, but '%s' follows class %s"
            % (handler_path, ".".join(rest), owner_path)
        )
    method_name = rest[0]
    if not hasattr(obj, method_name):
        raise HandlerLoadError("ASYA_HANDLER=%s: class %s has no method '%s'" % (handler_path, owner_path, method_name))
    if not instantiate:
        _check_constructor(obj, handler_path)
        method = inspect.getattr_static(obj, method_name)
        if isinstance(method, (staticmethod, classmethod)):
            method = method.__func__
        if not callable(method):
            raise HandlerLoadError(
                "ASYA_HANDLER=%s: %s.%s is not callable (it is a %s)"
                % (handler_path, obj.__name__, method_name, type(method).__name__)
            )
        return method, module
    instance = _instantiate(obj, handler_path)
    try:
        method = getattr(instance, method_name)
    except Exception as exc:
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: reading %s.%s failed: %s: %s"
            % (handler_path, obj.__name__, method_name, _type_name(type(exc)), _one_line(exc))
        )
    if not callable(method):
        raise HandlerLoadError(
            "ASYA_HANDLER=%s: %s.%s is not callable (it is a %s)"
            % (handler_path, obj.__name__, method_name, type(method).__name__)
        )
    return method, module


# --------------------------------------------------------------------------------------------
# Requests and responses (pure functions, no sockets).


class InvalidRequest(ValueError):
    """The request is not valid JSON or not a valid envelope (msg_parsing_error)."""


class InvalidHandlerResult(ValueError):
    """The handler returned something the protocol does not allow (processing_error)."""


def _type_name(cls):
    module = getattr(cls, "__module__", "builtins")
    if module in ("builtins", "__main__", None):
        return cls.__qualname__
    return module + "." + cls.__qualname__


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_decode_json = json.JSONDecoder().decode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode

# Strings of at least this many characters are checked for characters that JSON must escape with
# a few memchr-speed scans; most large strings (base64, text without quotes) then need no escaping
# and are copied as they are, about 10x faster than the C encoder's per-character escaping. In a
# response they are not even joined into the JSON text: the text gets a marker (a raw NUL, which
# the encoder never writes: it escapes U+0000) and the string is sent as its own UTF-8 piece.
_LARGE_STRING_CHARS = 4096
_MUST_ESCAPE = ('"', "\\", "\n", "\r", "\t") + tuple(chr(code) for code in range(32) if chr(code) not in "\n\r\t")
_c_encode_basestring = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
_MARKER = "\x00"
_QUOTE = b'"'
# Responses to requests below this size are encoded by the C encoder alone (no Python call per
# string); larger ones take the large-string path above.
_LARGE_REQUEST_BYTES = 64 * 1024


def _default(value):
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_plain_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
if _make_c_encoder is not None:
    # No markers dict (it would be shared by concurrent calls and report false cycles): a cyclic
    # result raises RecursionError instead, which the caller reports like any encoding error.
    _encode_small = _make_c_encoder(None, _default, _c_encode_basestring, None, ":", ",", False, False, False)
else:  # no C accelerator: the plain encoder
    _encode_small = None


def _encode_parts(value):
    """UTF-8 pieces of the compact JSON text of `value`, large strings as pieces of their own.
    Raises UnicodeEncodeError for strings holding lone surrogates."""
    if _make_c_encoder is None:
        return [_plain_encode(value).encode("utf-8")]
    large = []

    def encode_string(text):
        if len(text) >= _LARGE_STRING_CHARS:
            for character in _MUST_ESCAPE:
                if character in text:
                    return _c_encode_basestring(text)
            large.append(text)
            return _MARKER
        return _c_encode_basestring(text)

    if isinstance(value, str):
        chunks = [encode_string(value)]
    else:
        encode = _make_c_encoder(None, _default, encode_string, None, ":", ",", False, False, False)
        chunks = encode(value, 0)
    text = "".join(chunks)
    if not large:
        return [text.encode("utf-8")]
    segments = text.split(_MARKER)
    del text
    parts = []
    for index, string in enumerate(large):
        parts.append(segments[index].encode("utf-8"))
        parts.append(_QUOTE)
        parts.append(string.encode("utf-8"))
        parts.append(_QUOTE)
    parts.append(segments[-1].encode("utf-8"))
    return parts


def parse_request(body):
    """Decodes and checks one request body (bytes-like) as an envelope; returns the envelope dict.

    The envelope is returned as decoded (unknown fields included); route.current defaults to 0.
    Raises InvalidRequest with a message naming the offending field.
    """
    if len(body) == 0:
        raise InvalidRequest("empty request: the frame has no body, expected a JSON envelope")
    try:
        text = str(body, "utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("request is not valid UTF-8: %s" % exc)
    try:
        envelope = _decode_json(text)
    except ValueError as exc:
        raise InvalidRequest("request is not valid JSON: %s" % exc)
    if not isinstance(envelope, dict):
        raise InvalidRequest("request must be a JSON object (an envelope), got %s" % _json_type(envelope))
    check_envelope(envelope)
    return envelope


def check_envelope(envelope):
    """Checks an input envelope's shape (PROTOCOL section 1); raises InvalidRequest."""
    if "payload" not in envelope:
        raise InvalidRequest("envelope has no 'payload' field")
    if "route" not in envelope:
        raise InvalidRequest("envelope has no 'route' field")
    route = envelope["route"]
    if not isinstance(route, dict):
        raise InvalidRequest("envelope field 'route' must be an object, got %s" % _json_type(route))
    if "actors" not in route:
        raise InvalidRequest("envelope field 'route.actors' is missing")
    actors = route["actors"]
    if not isinstance(actors, list):
        raise InvalidRequest("envelope field 'route.actors' must be an array, got %s" % _json_type(actors))
    if not actors:
        raise InvalidRequest("envelope field 'route.actors' must not be empty")
    for position, actor in enumerate(actors):
        if not isinstance(actor, str):
            raise InvalidRequest(
                "envelope field 'route.actors[%d]' must be a string, got %s" % (position, _json_type(actor))
            )
    current = route.get("current", 0)
    if type(current) is not int:
        raise InvalidRequest("envelope field 'route.current' must be an integer, got %s" % _json_type(current))
    if current < 0 or current > len(actors):
        raise InvalidRequest(
            "envelope field 'route.current' is %d, out of range: must be between 0 and %d (the number of actors)"
            % (current, len(actors))
        )
    if "metadata" in route and not isinstance(route["metadata"], dict):
        raise InvalidRequest(
            "envelope field 'route.metadata' must be an object, got %s" % _json_type(route["metadata"])
        )
    if "headers" in envelope and not isinstance(envelope["headers"], dict):
        raise InvalidRequest("envelope field 'headers' must be an object, got %s" % _json_type(envelope["headers"]))
    if "id" in envelope and not isinstance(envelope["id"], str):
        raise InvalidRequest("envelope field 'id' must be a string, got %s" % _json_type(envelope["id"]))


_ENVELOPE_FIELDS_FOR_HANDLER = ("id", "parent_id", "route", "headers", "deadline", "payload")


def handler_envelope(envelope):
    """The envelope an envelope-mode handler receives: id, parent_id, route, headers, deadline and
    payload where present (other fields are the sidecar's business)."""
    return {key: envelope[key] for key in _ENVELOPE_FIELDS_FOR_HANDLER if key in envelope}


def build_payload_outputs(envelope, result):
    """Turns a payload-mode handler result into response elements.

    None or [] -> [] (abort); a list -> one output per item (fan-out); anything else -> one output.
    Each output is {"payload", "route": input route with current + 1, "headers": input headers},
    the headers key only when the input had one. A list of one item is still a fan-out (of one):
    its element says so with "fanout": true, so a join later on the route gets a group of one.
    """
    if result is None:
        return []
    route = dict(envelope["route"])
    route["current"] = route.get("current", 0) + 1
    if "headers" in envelope:
        headers = envelope["headers"]
        if type(result) is list:
            outputs = [{"payload": item, "route": route, "headers": headers} for item in result]
        else:
            return [{"payload": result, "route": route, "headers": headers}]
    elif type(result) is list:
        outputs = [{"payload": item, "route": route} for item in result]
    else:
        return [{"payload": result, "route": route}]
    if len(outputs) == 1:
        outputs[0]["fanout"] = True
    return outputs


def check_envelope_outputs(input_actors, input_current, result, validate=True):
    """Turns an envelope-mode handler result into response elements, checking each output.

    `input_actors`/`input_current` are the input route's, captured before the handler ran. None ->
    [] (abort); a dict -> [dict]; a list of dicts -> itself. With `validate`, each output needs a
    payload and a route object whose actors keep input actors[0..current] as a prefix (past and
    current actor unchanged) and whose current is an integer between 0 and len(actors).
    Raises InvalidHandlerResult naming the output and the rule.
    """
    if result is None:
        return []
    if isinstance(result, dict):
        outputs = [result]
    elif isinstance(result, list):
        outputs = result
    else:
        raise InvalidHandlerResult(
            "envelope-mode handler must return an envelope (dict), a list of envelopes or None, got %s"
            % type(result).__name__
        )
    kept = input_actors[: input_current + 1]
    for position, output in enumerate(outputs):
        where = "output %d" % position if len(outputs) > 1 else "output"
        if not isinstance(output, dict):
            raise InvalidHandlerResult("%s of the envelope-mode handler is a %s, not an envelope (dict)"
                                       % (where, type(output).__name__))
        if not validate:
            continue
        if "payload" not in output:
            raise InvalidHandlerResult("%s has no 'payload'" % where)
        route = output.get("route")
        if not isinstance(route, dict):
            raise InvalidHandlerResult(
                "%s: 'route' must be an object, got %s" % (where, "nothing" if route is None else _json_type(route))
            )
        actors = route.get("actors")
        if not isinstance(actors, list):
            raise InvalidHandlerResult("%s: 'route.actors' must be an array, got %s" % (where, _json_type(actors)))
        if actors[: len(kept)] != kept:
            raise InvalidHandlerResult(
                "%s changes the route's past: input actors[0..%d] %s must be kept as the start of the output "
                "actors, got %s" % (where, input_current, json.dumps(kept), json.dumps(actors))
            )
        current = route.get("current", 0)
        if type(current) is not int:
            raise InvalidHandlerResult("%s: 'route.current' must be an integer, got %s" % (where, _json_type(current)))
        if current < 0 or current > len(actors):
            raise InvalidHandlerResult(
                "%s: 'route.current' is %d, must be between 0 and %d (the number of actors)"
                % (where, current, len(actors))
            )
        if "headers" in output and not isinstance(output["headers"], dict):
            raise InvalidHandlerResult(
                "%s: 'headers' must be an object, got %s" % (where, _json_type(output["headers"]))
            )
    return outputs


def error_response(code, message, error_type, trace=""):
    """One error element, as a response list: [{"error", "details": {message, type, traceback}}]."""
    return [{"error": code, "details": {"message": message, "type": error_type, "traceback": trace}}]


def exception_response(code, exc):
    """An error response for a caught exception, with its formatted traceback."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return error_response(code, str(exc), _type_name(type(exc)), trace)


def encode_response(response):
    """Serializes a response list to UTF-8 JSON bytes (compact). Strings holding lone surrogates
    (from \\ud800-style escapes in the input) are written as escapes instead of invalid UTF-8."""
    return b"".join(encode_response_parts(response))


def encode_response_parts(response, small=False):
    """encode_response() as a list of bytes pieces to be sent one after the other (large strings
    are pieces of their own, never joined). `small`: the response is expected to be small; the C
    encoder alone is used (same text)."""
    try:
        if small and _encode_small is not None:
            return ["".join(_encode_small(response, 0)).encode("utf-8")]
        return _encode_parts(response)
    except UnicodeEncodeError:
        return [_encode_ascii(response).encode("ascii")]


def _run_coroutine(coroutine):
    loop = getattr(_thread_state, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_state.loop = loop
    return loop.run_until_complete(coroutine)


_thread_state = threading.local()
# Handler results of these types are never awaitable: no inspect call for them.
_PLAIN_RESULT_TYPES = frozenset((dict, list, str, int, float, bool, type(None), tuple))


class _HandlerThread(object):
    """One thread that runs every handler call, in the order the requests arrived; each connection
    thread waits for its own result. A thread woken to run a model lands on whichever core is
    idle, with cold caches (module docstring, "Waiting for the next batch"); this one goes from one
    batch to the next without sleeping when the next is already queued (a sidecar that sends
    ahead, PROTOCOL.md section 3 "Pipelined batches"), and polls for it up to `spin_seconds` after
    a call (yielding the core at each round) when none is.

    Order: the server takes a ticket (take_ticket) when a request starts to arrive, before it
    reads any byte of it, and the calls run in ticket order. A call whose ticket was taken
    earlier is waited for while its request is read and decoded. A sidecar writes the batch ahead
    on its second connection only once the runtime read the first one whole (PROTOCOL.md section
    3, "Order"), so the first one's ticket is the earlier one and the batch the sidecar sent first
    runs first, whichever connection thread finishes reading first (or when the first request
    changed threads on the way, Server._hand_off). A ticket whose request calls no handler (an
    invalid request, a call made on the connection's own thread, a connection closed before the
    request came whole) is given back with release(). A connection that stops in the middle of a
    request holds back the calls of requests that began after it until it is closed."""

    def __init__(self, call, spin_seconds=0.0):
        self._call = call
        self._spin = spin_seconds
        self._jobs = {}  # ticket -> [argument, result, exception, done]
        self._open = set()  # tickets taken and neither run nor released
        self._issued = 0
        self._next = 0  # the ticket whose call runs next
        self._queued = threading.Condition(threading.Lock())
        threading.Thread(target=self._run, name="asya-handler", daemon=True).start()

    def take_ticket(self):
        with self._queued:
            ticket = self._issued
            self._issued += 1
            self._open.add(ticket)
            return ticket

    def release(self, ticket):
        """Gives back a ticket whose request made no call here (no-op for one that did)."""
        with self._queued:
            if ticket in self._open and ticket not in self._jobs:
                self._open.discard(ticket)
                if self._jobs:  # a later call may have waited for this ticket
                    self._queued.notify()

    def call(self, argument, ticket=None):
        job = [argument, None, None, threading.Event()]  # argument, result, exception, done
        with self._queued:
            if ticket is None or ticket not in self._open:
                ticket = self._issued
                self._issued += 1
                self._open.add(ticket)
            self._jobs[ticket] = job
            self._queued.notify()
        job[3].wait()
        if job[2] is not None:
            raise job[2]
        return job[1]

    def _ready(self):
        """The job to run next, or None; skips tickets given back. Called with the lock held."""
        while self._next < self._issued and self._next not in self._open:
            self._next += 1
        return self._jobs.get(self._next)

    def _run(self):
        monotonic = time.monotonic
        yield_core = os.sched_yield
        while True:
            if self._spin and self._ready() is None:  # a racy read: the locked wait below decides
                deadline = monotonic() + self._spin
                while self._ready() is None and monotonic() < deadline:
                    yield_core()
            with self._queued:
                job = self._ready()
                while job is None:
                    self._queued.wait()
                    job = self._ready()
                ticket = self._next
            try:
                job[1] = self._call(job[0])
            except BaseException as exc:  # handed to the caller, which handles it as before
                job[2] = exc
            job[0] = None
            with self._queued:
                del self._jobs[ticket]
                self._open.discard(ticket)
            job[3].set()


class Runtime(object):
    """Turns request bodies into response bodies with one loaded handler. No sockets: the server
    calls handle(); tests may too. Thread-safe; handler calls are serialized unless
    `handler_thread_safe`."""

    def __init__(self, handler, mode="payload", enable_validation=True, handler_thread_safe=False, batch=False):
        if mode not in ("payload", "envelope"):
            raise ValueError("mode must be payload or envelope, got %r" % (mode,))
        self.handler = handler
        self.mode = mode
        self.batch = batch
        self.enable_validation = enable_validation
        self._lock = None if handler_thread_safe else threading.Lock()
        self._is_coroutine_function = inspect.iscoroutinefunction(handler)
        self._handler_thread = None

    def use_handler_thread(self, when, spin_seconds=0.0):
        """Runs a handler call on one thread of its own (_HandlerThread) whenever `when()` is
        true at the call (the server: several connections are open), for a batch runtime whose
        calls are serialized anyway: consecutive batches, one sent ahead on a second connection,
        then run back to back on one thread and core instead of on a thread woken for each. A
        lone connection's thread keeps calling the handler itself (and spinning between batches,
        module docstring)."""
        self._handler_thread = _HandlerThread(self._call_here, spin_seconds)
        self._handler_thread_when = when

    def take_ticket(self):
        """The server's ticket for a request it has read whole (_HandlerThread, "Order"), or None
        when calls do not go through a handler thread."""
        thread = self._handler_thread
        return None if thread is None else thread.take_ticket()

    def release_ticket(self, ticket):
        if ticket is not None:
            self._handler_thread.release(ticket)

    def _call(self, argument):
        if self._handler_thread is not None and self._handler_thread_when():
            ticket = getattr(_thread_state, "ticket", None)
            _thread_state.ticket = None
            return self._handler_thread.call(argument, ticket)
        return self._call_here(argument)

    def _call_here(self, argument):
        lock = self._lock
        if lock is None:
            result = self.handler(argument)
            if type(result) not in _PLAIN_RESULT_TYPES and (
                self._is_coroutine_function or inspect.isawaitable(result)
            ):
                result = _run_coroutine(result)
            return result
        with lock:
            result = self.handler(argument)
            if type(result) not in _PLAIN_RESULT_TYPES and (
                self._is_coroutine_function or inspect.isawaitable(result)
            ):
                result = _run_coroutine(result)
            return result

    def respond(self, body, peer=None):
        """Returns the response (a list) for one request body (bytes-like). Never raises. `peer`:
        the connection's _SidecarPeer, asked whether a payload returned unchanged may be answered
        as "payload_unchanged" (None: never)."""
        if self.batch:
            return self.respond_batch(body, peer)
        try:
            envelope = parse_request(body)
        except InvalidRequest as exc:
            return error_response(MSG_PARSING_ERROR, str(exc), "InvalidRequest")
        except RecursionError as exc:
            return error_response(MSG_PARSING_ERROR, "request is nested too deeply: %s" % exc, "RecursionError")
        try:
            if self.mode == "payload":
                payload = envelope["payload"]
                outputs = build_payload_outputs(envelope, self._call(payload))
                if peer is not None and type(payload) in _UNCHANGEABLE_TYPES:
                    _answer_unchanged(outputs, payload, peer)
                return outputs
            route = envelope["route"]
            actors = list(route["actors"])
            current = route.get("current", 0)
            result = self._call(handler_envelope(envelope))
            return check_envelope_outputs(actors, current, result, self.enable_validation)
        except InvalidHandlerResult as exc:
            log.warn("handler result rejected", id=_envelope_id(envelope), error=str(exc))
            return error_response(PROCESSING_ERROR, str(exc), "InvalidHandlerResult")
        except Exception as exc:
            # An exception message often quotes the input, so it is logged at debug only; the
            # sidecar gets it (with the traceback) in the error response.
            if log.enabled(30):
                log.warn("handler raised", id=_envelope_id(envelope), type=_type_name(type(exc)))
            if log.enabled(10):
                log.debug("handler exception message", id=_envelope_id(envelope), error=_one_line(exc))
            return exception_response(PROCESSING_ERROR, exc)

    def respond_batch(self, body, peer=None):
        """Batch mode: the response for a batch request (a JSON array of envelopes: a list with one
        answer per envelope, in order) or for a single envelope (its answer, as a batch of one).
        Never raises."""
        try:
            text = str(body, "utf-8")
            request = _decode_json(text)
        except UnicodeDecodeError as exc:
            return error_response(MSG_PARSING_ERROR, "request is not valid UTF-8: %s" % exc, "InvalidRequest")
        except ValueError as exc:
            return error_response(MSG_PARSING_ERROR, "request is not valid JSON: %s" % exc, "InvalidRequest")
        except RecursionError as exc:
            return error_response(MSG_PARSING_ERROR, "request is nested too deeply: %s" % exc, "RecursionError")
        single = not isinstance(request, list)
        envelopes = [request] if single else request
        answers = [None] * len(envelopes)
        for position, envelope in enumerate(envelopes):
            try:
                if not isinstance(envelope, dict):
                    raise InvalidRequest(
                        "request must be a JSON object (an envelope) or an array of envelopes, got %s"
                        % _json_type(envelope)
                    )
                check_envelope(envelope)
            except InvalidRequest as exc:
                where = "" if single else "batch element %d: " % position
                answers[position] = error_response(MSG_PARSING_ERROR, where + str(exc), "InvalidRequest")
        called = [position for position, answer in enumerate(answers) if answer is None]
        if called:
            self._call_batch([envelopes[position] for position in called], called, answers, peer)
        return answers[0] if single else answers

    def _call_batch(self, envelopes, positions, answers, peer=None):
        """Calls the batch handler once with `envelopes` and fills answers[positions[i]]."""
        if self.mode == "payload":
            argument = [envelope["payload"] for envelope in envelopes]
        else:
            argument = [handler_envelope(envelope) for envelope in envelopes]
            routes = [(list(envelope["route"]["actors"]), envelope["route"].get("current", 0)) for envelope in envelopes]
        try:
            results = self._call(argument)
            if isinstance(results, tuple):
                results = list(results)
            if not isinstance(results, list):
                raise InvalidHandlerResult(
                    "batch handler must return a list with one result per input, got %s" % type(results).__name__
                )
            if len(results) != len(envelopes):
                raise InvalidHandlerResult(
                    "batch handler returned %d results for %d inputs: return exactly one result per input, "
                    "in order (None to abort an item, an exception instance to fail it)"
                    % (len(results), len(envelopes))
                )
        except InvalidHandlerResult as exc:
            log.warn("batch handler result rejected", size=len(envelopes), error=str(exc))
            failed = error_response(PROCESSING_ERROR, str(exc), "InvalidHandlerResult")
            for position in positions:
                answers[position] = failed
            return
        except Exception as exc:
            if log.enabled(30):
                log.warn("batch handler raised", size=len(envelopes), type=_type_name(type(exc)))
            failed = exception_response(PROCESSING_ERROR, exc)
            for position in positions:
                answers[position] = failed
            return
        for index, result in enumerate(results):
            envelope = envelopes[index]
            position = positions[index]
            if isinstance(result, BaseException):
                if log.enabled(30):
                    log.warn("batch item failed", id=_envelope_id(envelope), type=_type_name(type(result)))
                answers[position] = exception_response(PROCESSING_ERROR, result)
            elif self.mode == "payload":
                outputs = answers[position] = build_payload_outputs(envelope, result)
                payload = envelope["payload"]
                if peer is not None and type(payload) in _UNCHANGEABLE_TYPES:
                    _answer_unchanged(outputs, payload, peer)
            else:
                try:
                    actors, current = routes[index]
                    answers[position] = check_envelope_outputs(actors, current, result, self.enable_validation)
                except InvalidHandlerResult as exc:
                    log.warn("handler result rejected", id=_envelope_id(envelope), error=str(exc))
                    answers[position] = error_response(PROCESSING_ERROR, str(exc), "InvalidHandlerResult")

    def handle(self, body):
        """Returns the encoded response body (bytes) for one request body. Never raises."""
        return b"".join(self.handle_parts(body))

    def handle_parts(self, body, ticket=None, peer=None):
        """handle() as a list of bytes pieces to send one after the other (a large string of the
        response is a piece of its own, never copied into one response buffer). Never raises.
        `ticket`: the request's place in the handler thread's order (take_ticket), used or given
        back here. `peer`: as for respond()."""
        if ticket is None:
            response = self.respond(body, peer)
        else:
            _thread_state.ticket = ticket
            try:
                response = self.respond(body, peer)
            finally:
                _thread_state.ticket = None
                self.release_ticket(ticket)
        try:
            return encode_response_parts(response, len(body) < _LARGE_REQUEST_BYTES)
        except (TypeError, ValueError, RecursionError) as exc:
            message = "handler result cannot be encoded as JSON: %s" % exc
            log.warn("handler result rejected", error=message)
            return [encode_response(error_response(PROCESSING_ERROR, message, _type_name(type(exc))))]


def _answer_unchanged(outputs, payload, peer):
    """Turns each output whose payload is `payload` itself (an immutable value the handler returned
    as it got it) into {"payload_unchanged": true, route, headers?} when the connection's sidecar
    takes that answer (PROTOCOL.md section 3). `outputs` is changed in place."""
    marked = 0
    for output in outputs:
        if output.get("payload") is payload and peer.takes_unchanged():
            del output["payload"]
            output["payload_unchanged"] = True
            marked += 1
    if marked and log.enabled(10):
        log.debug("answered payload_unchanged", outputs=marked)


def sidecar_declares(text, peer_pid, feature):
    """Whether a sidecar-features file's text declares `feature` to a connection whose peer has pid
    `peer_pid` (0: not visible from this pid namespace; the file is then trusted): the first line
    is the writing sidecar's pid, which must be the peer's, and a later line is `feature`."""
    lines = text.split("\n")
    if len(lines) < 2:
        return False
    try:
        pid = int(lines[0].strip(), 10)
    except ValueError:
        return False
    if pid <= 0 or (peer_pid and peer_pid != pid):
        return False
    return any(line.strip() == feature for line in lines[1:])


class _SidecarPeer(object):
    """The sidecar on one connection: whether it takes "payload_unchanged" answers, read from its
    sidecar-features file (next to the socket) when an answer could first use it, once per
    connection, so a sidecar of another version that connects later is asked again."""

    __slots__ = ("_connection", "_path", "_takes_unchanged")

    def __init__(self, connection, features_path):
        self._connection = connection
        self._path = features_path
        self._takes_unchanged = None

    def takes_unchanged(self):
        known = self._takes_unchanged
        if known is None:
            known = self._takes_unchanged = self._read()
        return known

    def _read(self):
        try:
            credentials = self._connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            peer_pid = struct.unpack("3i", credentials)[0]
            with open(self._path, "r", encoding="utf-8", errors="replace") as features:
                text = features.read(4096)
        except (OSError, AttributeError, struct.error):
            return False
        return sidecar_declares(text, peer_pid, PAYLOAD_UNCHANGED_FEATURE)


def _envelope_id(envelope):
    value = envelope.get("id")
    return value if isinstance(value, str) else None


def handle_request(body, handler, mode="payload", enable_validation=True):
    """Convenience for tests: the decoded response (list) for one request body and handler."""
    return json.loads(Runtime(handler, mode, enable_validation).handle(body))


# --------------------------------------------------------------------------------------------
# asya_runtime.testing: call a handler exactly as the runtime would, in a unit test.
#
# It lives in this file so that the runtime stays one file (the supervisor runs it and the
# Kubernetes ConfigMap embeds it); importing asya_runtime registers the submodule
# `asya_runtime.testing` in sys.modules, the way `os` registers `os.path`, so
# `from asya_runtime.testing import call_payload` works from an installed copy
# (`pip install ./runtimes/python`) or with this folder on sys.path.


class HandlerError(Exception):
    """The runtime answered with an error element instead of outputs.

    `code` is processing_error (the handler raised or returned something the protocol does not
    allow) or msg_parsing_error (the test's envelope is not a valid envelope); `error_type`,
    `message` and `traceback` are the element's details, as the sidecar would put them in the
    error envelope; `element` is the whole element."""

    def __init__(self, element):
        details = element.get("details") or {}
        self.element = element
        self.code = element.get("error")
        self.error_type = details.get("type", "")
        self.message = details.get("message", "")
        self.traceback = details.get("traceback", "")
        Exception.__init__(self, "%s: %s: %s" % (self.code, self.error_type, self.message))

    def __str__(self):
        text = "%s: %s: %s" % (self.code, self.error_type, self.message)
        if self.traceback:
            text += "\n\nhandler traceback (as sent to the sidecar):\n" + self.traceback.rstrip()
        return text


def _testing_respond(handler, envelope, mode, enable_validation, raise_on_error):
    if isinstance(handler, str):
        handler = load_handler(handler)
    elif not callable(handler):
        raise TypeError("handler must be a callable or an ASYA_HANDLER string, got %s" % type(handler).__name__)
    try:
        body = json.dumps(envelope, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError("the test's envelope cannot be sent as JSON (the sidecar sends JSON): %s" % exc)
    response = json.loads(Runtime(handler, mode, enable_validation, handler_thread_safe=True).handle(body))
    if raise_on_error and len(response) == 1 and "error" in response[0]:
        raise HandlerError(response[0])
    return response


def call_payload(handler, payload, route=None, headers=None, raise_on_error=True):
    """Calls a payload-mode handler the way the runtime does; returns the runtime's outputs.

    `handler` is a callable (function, bound method, async function) or an ASYA_HANDLER string
    (``"module.Class.method"`` is loaded and instantiated as the runtime does). `payload` goes
    through JSON as it would on the wire, so the handler gets a copy. `route` is the input route
    (a dict, or a list of actor names with current 0; default ``["handler"]``); `headers` the
    input headers, if any.

    Returns the list of outputs ``[{"payload", "route", "headers"?}, ...]``: one for a single
    result, one per item for a list (fan-out), ``[]`` for None or [] (abort). Each output's route
    is the input route with ``current + 1``. A handler that raises, or returns something that is
    not JSON, raises HandlerError; with ``raise_on_error=False`` the error element is returned as
    the one-element list the sidecar would get."""
    if route is None:
        route = {"actors": ["handler"], "current": 0}
    elif isinstance(route, (list, tuple)):
        route = {"actors": list(route), "current": 0}
    envelope = {"id": "test-1", "route": route, "payload": payload}
    if headers is not None:
        envelope["headers"] = headers
    return _testing_respond(handler, envelope, "payload", True, raise_on_error)


def call_envelope(handler, envelope, mode="envelope", enable_validation=True, raise_on_error=True):
    """Sends a whole input envelope through the runtime with `handler`; returns its outputs.

    `mode` is ASYA_HANDLER_MODE: ``"envelope"`` (default) calls the handler with the envelope
    (id, parent_id, route, headers, deadline, payload where present) and checks its result as the
    runtime does (unless `enable_validation` is False, like ASYA_ENABLE_VALIDATION=false);
    ``"payload"`` calls it with the payload. The envelope needs ``route`` and ``payload``, as
    from the sidecar. Returns the outputs (``[]`` for abort); errors as in call_payload()."""
    return _testing_respond(handler, envelope, mode, enable_validation, raise_on_error)


def call_batch(handler, batch, route=None, headers=None):
    """Calls a batch handler (ASYA_HANDLER_BATCH=true, payload mode) the way the runtime does
    with one batch of payloads; returns one answer per payload, in order: the list of its outputs
    (``[]`` for an aborted item) or, for a failed item, the one-element error list
    ``[{"error", "details": {"message", "type", "traceback"}}]`` the sidecar would get (never
    raised: the other items' answers stand). `route` and `headers` are those of every input, as
    in call_payload()."""
    if isinstance(handler, str):
        handler = load_handler(handler)
    elif not callable(handler):
        raise TypeError("handler must be a callable or an ASYA_HANDLER string, got %s" % type(handler).__name__)
    if route is None:
        route = {"actors": ["handler"], "current": 0}
    elif isinstance(route, (list, tuple)):
        route = {"actors": list(route), "current": 0}
    envelopes = []
    for position, payload in enumerate(batch):
        envelope = {"id": "test-%d" % (position + 1), "route": route, "payload": payload}
        if headers is not None:
            envelope["headers"] = headers
        envelopes.append(envelope)
    try:
        body = json.dumps(envelopes, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError("the test's payloads cannot be sent as JSON (the sidecar sends JSON): %s" % exc)
    return json.loads(Runtime(handler, "payload", True, handler_thread_safe=True, batch=True).handle(body))


def payloads(outputs):
    """The payloads of call_payload()/call_envelope() outputs, in order."""
    return [output["payload"] for output in outputs]


testing = types.ModuleType(
    __name__ + ".testing",
    "Call a handler exactly as the Asya runtime would, in unit tests (see asya_runtime.call_payload).",
)
testing.__all__ = ["HandlerError", "call_payload", "call_envelope", "call_batch", "payloads"]
for _name in testing.__all__:
    setattr(testing, _name, globals()[_name])
del _name
sys.modules[testing.__name__] = testing


# --------------------------------------------------------------------------------------------
# Socket server.


class _PeerClosed(Exception):
    pass


class Server(object):
    """Accepts connections on `listener` and serves each until EOF; connections are concurrent.

    One leader thread accepts and serves a connection itself, so a client that opens one
    connection per request never waits for a thread hand-off. Between two requests the leader
    also watches the listener: when another client connects, its connection is handed to a worker
    thread (pooled, at most _MAX_IDLE_WORKERS kept idle), with any bytes of its next request
    already received, and the leader accepts the newcomer. The newcomer goes first even when the
    leader's connection has its next request waiting, so a client that always does (a sidecar
    worker leasing its next batch ahead) cannot keep another in the backlog. So every open connection is served, each by its own thread once
    there are several. A connection whose handler call is running is handed off after it, which
    costs nothing extra because handler calls are serialized by default.
    """

    def __init__(self, listener, runtime, max_message_bytes, spin_seconds=0.0, features_path=None):
        self.listener = listener
        # The sidecar-features file (_SidecarPeer), or None to never answer "payload_unchanged".
        self.features_path = features_path
        self.runtime = runtime
        self.max_message_bytes = max_message_bytes
        # After an answer, how long a connection's thread polls for the next request without
        # sleeping (module docstring, "Waiting for the next batch"); 0: never.
        self.spin_seconds = spin_seconds
        self.stopping = False
        self._lock = threading.Lock()
        self._active_requests = 0
        self._drained = threading.Condition(self._lock)
        self._idle_workers = 0
        self._handed_off = collections.deque()
        self._work_available = threading.Condition(self._lock)
        self._open_connections = 0  # accepted and not closed yet

    def start(self):
        threading.Thread(target=self._lead, name="asya-leader", daemon=True).start()

    def _lead(self):
        listener = self.listener
        buffer = [bytearray(_REUSED_BUFFER_BYTES)]  # this thread's request buffer (grows, see _serve)
        while True:
            try:
                connection, _ = listener.accept()
            except OSError as exc:
                if self.stopping:
                    return
                log.error("accept failed; retrying", error=str(exc))
                time.sleep(0.1)
                continue
            handed_off = False
            with self._lock:
                self._open_connections += 1
            try:
                handed_off = self._serve(connection, buffer, True)
            except Exception as exc:  # a bug: never let it kill the accepting thread
                log.error("connection failed", type=_type_name(type(exc)), error=_one_line(exc))
            finally:
                if not handed_off:
                    self._close(connection)
            if self.stopping:
                return

    def _hand_off(self, connection, pending=b"", ticket=None):
        """Gives a connection between two requests to an idle worker, or to a new worker thread;
        `pending`: bytes of its next request already received (served first), `ticket`: that
        request's place in the handler order when it was received whole (Runtime.take_ticket)."""
        with self._lock:
            if self._idle_workers > 0:
                self._idle_workers -= 1
                self._handed_off.append((connection, pending, ticket))
                self._work_available.notify()
                return
        try:
            threading.Thread(
                target=self._work, args=(connection, pending, ticket), name="asya-conn", daemon=True
            ).start()
        except RuntimeError as exc:  # cannot start a thread: the connection is closed, the peer reconnects
            log.error("cannot start a connection thread; closing the connection", error=str(exc))
            self.runtime.release_ticket(ticket)
            self._close(connection)

    def _work(self, connection, pending, ticket):
        buffer = [bytearray(_REUSED_BUFFER_BYTES)]
        lock = self._lock
        while True:
            try:
                self._serve(connection, buffer, False, pending, ticket)
            except Exception as exc:
                log.error("connection failed", type=_type_name(type(exc)), error=_one_line(exc))
            finally:
                self._close(connection)
            with lock:
                if self.stopping or self._idle_workers >= _MAX_IDLE_WORKERS:
                    return
                self._idle_workers += 1
                while not self._handed_off:
                    if self.stopping:
                        self._idle_workers -= 1
                        return
                    self._work_available.wait()
                connection, pending, ticket = self._handed_off.popleft()

    def _close(self, connection):
        connection.close()
        with self._lock:
            self._open_connections -= 1

    def _serve(self, connection, holder, leader, pending=b"", ticket=None):
        """Serves one connection (_serve_requests); gives back a handed-over ticket it never used."""
        held = [ticket]
        try:
            return self._serve_requests(connection, holder, leader, pending, held)
        finally:
            self.runtime.release_ticket(held[0])

    def _serve_requests(self, connection, holder, leader, pending, held):
        """Serves request/response pairs on one connection until EOF, a read error or shutdown.

        `holder[0]` is the thread's request buffer: one recv usually brings a whole request (length
        and body) into it; bytes of a following request stay there for the next round. It grows
        for a larger request up to _KEPT_BUFFER_BYTES and keeps that size (fresh buffers of a
        megabyte or more cost page faults on every request); larger requests get a buffer of their
        own, sized exactly, that is dropped after the request. When `leader`, returns True after
        handing the connection, between two requests, to a worker because another client connected
        (`pending`: bytes of the next request received with the last one, served first;
        `held[0]`: the ticket of that request when it came whole, else None)."""
        recv_into = connection.recv_into
        sendmsg = connection.sendmsg
        handle_parts = self.runtime.handle_parts
        runtime_ticket = self.runtime.take_ticket
        peer = None if self.features_path is None else _SidecarPeer(connection, self.features_path)
        # Tickets only when calls go through a handler thread (a batch runtime, Runtime.take_ticket).
        ordered = getattr(self.runtime, "_handler_thread", None) is not None

        def take_ticket():
            # Order matters only between connections (a lone one calls the handler itself).
            return runtime_ticket() if self._open_connections > 1 else None

        peek = connection.recv

        max_bytes = self.max_message_bytes
        unpack = _HEADER.unpack_from
        pack = _HEADER.pack
        waitall = socket.MSG_WAITALL
        lock = self._lock
        buffer = holder[0]
        view = memoryview(buffer)
        capacity = len(buffer)
        filled = 0  # bytes in buffer[:filled] received and not answered yet
        if pending:  # received by the leader before it handed this connection over
            if len(pending) > capacity:
                buffer = holder[0] = bytearray(len(pending))
                view = memoryview(buffer)
                capacity = len(buffer)
            view[: len(pending)] = pending
            filled = len(pending)
        poller = None
        fresh = leader  # the first request usually arrives with the connection: try it at once
        spin = self.spin_seconds
        answered = 0.0  # when the last answer was sent (monotonic), while spinning is enabled
        spin_next = False  # the previous request came within `spin` of its predecessor's answer
        listener = self.listener
        # Batch mode, leader only: one more poll of the listener per request (module docstring).
        hand_off_busy = leader and getattr(self.runtime, "batch", False)
        while True:
            if leader and filled and select.select((listener,), (), (), 0)[0]:
                # The next request came with the last one, and another client is connecting: as
                # below, the newcomer goes first; the bytes received go along with the connection.
                if self.stopping:
                    return False
                self._hand_off(connection, bytes(view[:filled]))
                return True
            try:
                while filled < 4:
                    received = -1
                    # The ticket comes before any byte of the request is read (_HandlerThread,
                    # "Order"), when calls may go through the handler thread: several connections
                    # are open, or a worker thread serves this one (the leader may accept another
                    # at any time). The leader alone accepts no one before this request has one.
                    ticket_first = (
                        filled == 0 and ordered and held[0] is None and (not leader or self._open_connections > 1)
                    )
                    if filled == 0:
                        if fresh and ticket_first:
                            fresh = False  # not read at once: the ticket first, after the poll
                        if fresh:
                            fresh = False
                            try:
                                received = recv_into(view, capacity, _DONTWAIT)
                            except BlockingIOError:
                                pass
                        # Only for a lone connection: with several (ASYA_CONCURRENCY > 1) the
                        # next batch is usually in flight already, and the leader's hand-off of
                        # an idle connection to a worker must not depend on a spin's timing.
                        if received < 0 and spin_next and self._open_connections == 1:
                            spin_next = False
                            if poller is None:
                                poller = select.poll()
                                poller.register(connection, select.POLLIN)
                                if leader:
                                    poller.register(self.listener, select.POLLIN)
                                connection_fd = connection.fileno()
                            self._spin(poller, answered + spin)
                        if received < 0 and leader:
                            if poller is None:
                                poller = select.poll()
                                poller.register(connection, select.POLLIN)
                                poller.register(self.listener, select.POLLIN)
                                connection_fd = connection.fileno()
                            events = poller.poll()
                            if len(events) > 1 or events[0][0] != connection_fd:
                                # Another client is connecting: it goes first, even when this
                                # connection's next request is already waiting (a sidecar worker
                                # that leases its next batch ahead sends it right after each
                                # answer, and would otherwise keep a second worker's connection
                                # in the backlog for as long as it has work). This connection is
                                # handed to a worker thread, its request still in its socket; a
                                # connection the client closed is just closed.
                                if self.stopping:
                                    return False
                                if len(events) > 1 or events[0][0] == connection_fd:
                                    try:
                                        if connection.recv(1, _PEEK_DONTWAIT) == b"":
                                            return False  # EOF: closed by the caller
                                    except BlockingIOError:
                                        pass
                                    except OSError:
                                        return False
                                self._hand_off(connection)
                                return True
                            if ticket_first:  # readable (or closed: the ticket is given back)
                                ticket_first = False
                                held[0] = runtime_ticket()
                    if ticket_first and received < 0:
                        if peek(1, _PEEK) == b"":
                            return False  # clean EOF between requests
                        held[0] = runtime_ticket()
                    if received < 0:
                        received = recv_into(view[filled:], capacity - filled)
                    if received == 0:
                        if filled == 0:
                            return False  # clean EOF between requests
                        self._reply_connection_error(
                            connection, "connection closed after %d of 4 length bytes" % filled
                        )
                        return False
                    filled += received
            except OSError:
                return False
            if answered:
                spin_next = time.monotonic() - answered <= spin
                answered = 0.0
            (length,) = unpack(buffer)
            if length > max_bytes:
                log.error(
                    "request frame of %d bytes exceeds ASYA_MAX_MESSAGE_BYTES=%d; closing the connection"
                    % (length, max_bytes),
                    frame_bytes=length,
                    max_message_bytes=max_bytes,
                )
                return False
            end = 4 + length
            try:
                if end <= capacity or end <= _KEPT_BUFFER_BYTES:
                    if end > capacity:  # grow this thread's buffer, keeping what was received
                        grown = bytearray(max(end, 2 * capacity))
                        grown[:filled] = view[:filled]
                        buffer = holder[0] = grown
                        view = memoryview(buffer)
                        capacity = len(buffer)
                    if filled < end:
                        self._read_exactly(recv_into, view[filled:end], end - filled, filled - 4, length)
                        filled = end
                    if ordered and held[0] is None:
                        held[0] = take_ticket()
                    if hand_off_busy and select.select((listener,), (), (), 0)[0]:
                        # A batch handler call is long: a client connecting now (a sidecar's
                        # second connection for a batch sent ahead, another worker's) would wait
                        # for all of it in the backlog. This connection goes to a worker thread
                        # with its request, and the leader accepts the newcomer first; the
                        # request keeps its ticket, so it still runs before the newcomer's.
                        if self.stopping:
                            return False
                        ticket, held[0] = held[0], None
                        if ticket is None:
                            ticket = runtime_ticket()
                        self._hand_off(connection, bytes(view[:filled]), ticket)
                        return True
                    body = view[4:end]
                else:
                    body = memoryview(bytearray(length))
                    body[: filled - 4] = view[4:filled]
                    self._read_exactly(recv_into, body[filled - 4 :], end - filled, filled - 4, length)
                    filled = end
                    if ordered and held[0] is None:
                        held[0] = take_ticket()
            except _PeerClosed as exc:
                self._reply_connection_error(connection, str(exc))
                return False
            except OSError:
                return False
            with lock:
                self._active_requests += 1
            try:
                ticket, held[0] = held[0], None
                parts = handle_parts(body, ticket, peer)
                del body
                size = 0
                for part in parts:
                    size += len(part)
                parts.insert(0, pack(size))
                try:
                    sent = sendmsg(parts)
                    if sent < size + 4:  # only when interrupted: send the rest
                        self._send_rest(connection, parts, sent)
                    if spin:
                        answered = time.monotonic()
                except OSError:
                    return False
            finally:
                with lock:
                    self._active_requests -= 1
                    if self._active_requests == 0 and self.stopping:
                        self._drained.notify_all()
            if filled > end:  # the start of the next request came with this one
                buffer[: filled - end] = buffer[end:filled]
                filled -= end
            else:
                filled = 0
            if self.stopping:
                return False

    @staticmethod
    def _spin(poller, deadline):
        """Polls `poller` (the connection, and the listener for the leader) without sleeping until
        one is readable or `deadline` (monotonic) passed. Yields the core at each round, so a
        thread of another process that is runnable on this core (the sidecar) runs first."""
        poll = poller.poll
        monotonic = time.monotonic
        yield_core = os.sched_yield
        while not poll(0):
            if monotonic() >= deadline:
                return
            yield_core()

    @staticmethod
    def _read_exactly(recv_into, view, length, before, total):
        """Fills `view` (`length` bytes); `before` body bytes of `total` were received earlier."""
        got = 0
        waitall = socket.MSG_WAITALL
        while got < length:
            received = recv_into(view[got:], length - got, waitall)
            if received == 0:
                raise _PeerClosed("connection closed after %d of %d request bytes" % (before + got, total))
            got += received

    @staticmethod
    def _send_rest(connection, parts, sent):
        for part in parts:
            if sent >= len(part):
                sent -= len(part)
                continue
            connection.sendall(memoryview(part)[sent:])
            sent = 0

    @staticmethod
    def _reply_connection_error(connection, message):
        log.warn("request could not be read: " + message)
        body = encode_response(error_response(CONNECTION_ERROR, message, "ConnectionError"))
        try:
            connection.sendall(_HEADER.pack(len(body)) + body)
        except OSError:
            pass

    def stop(self):
        """Stops accepting; idle connections are closed after their current request."""
        with self._lock:
            self.stopping = True
            self._work_available.notify_all()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes threads blocked in accept()
        except OSError:
            pass
        self.listener.close()

    def wait_drained(self, timeout):
        """Waits until no request is being processed; True when drained."""
        with self._lock:
            if self._active_requests == 0:
                return True
            self._drained.wait(timeout)
            return self._active_requests == 0


def open_listener(config):
    """Binds and listens on config.socket_path; raises ConfigError with the reason."""
    path = config.socket_path
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ConfigError("cannot create socket directory %s: %s" % (directory, exc.strerror or exc))
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise ConfigError("cannot inspect socket path %s: %s" % (path, exc.strerror or exc))
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise ConfigError("socket path %s is a directory: set ASYA_SOCKET_PATH to a file path" % path)
        if not stat.S_ISSOCK(existing.st_mode):
            raise ConfigError("socket path %s exists and is not a socket: remove it or choose another path" % path)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            live = True
        except OSError:
            live = False
        finally:
            probe.close()
        if live:
            raise ConfigError("another process is already listening on %s" % path)
        try:
            os.unlink(path)
            log.info("removed stale socket", path=path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError("cannot remove stale socket %s: %s" % (path, exc.strerror or exc))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        if config.socket_chmod is not None:
            os.chmod(path, config.socket_chmod)
        listener.listen(socket.SOMAXCONN)
    except OSError as exc:
        listener.close()
        raise ConfigError("cannot listen on %s: %s" % (path, exc.strerror or exc))
    return listener


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _write_ready_file(path, batch=False):
    """The ready file: the pid, and lines ``batch`` and ``pipeline`` when the runtime takes batch
    requests (PROTOCOL.md section 3; ``pipeline``: connections are served at once, each by its
    own thread, so a sidecar may keep its next batch waiting on a second connection)."""
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w") as ready:
        ready.write("%d\n" % os.getpid())
        if batch:
            ready.write("batch\npipeline\n")
    os.replace(temporary, path)


def _keep_freed_memory(environ):
    """Asks glibc's malloc to keep freed memory for reuse instead of returning it to the system at
    once. By default a freed block of a few megabytes at the top of a heap is given back, and the
    next request's strings of that size fault every page in again (a page fault costs about 5 us on
    a loaded VM: 1.3 ms per megabyte, more than decoding it). Blocks below 16 MiB are taken from
    the heap and up to 32 MiB of free memory is kept per heap; larger blocks are still mapped and
    unmapped on their own. Skipped when the MALLOC_*_ variables set these already, or without
    glibc."""
    if environ.get("MALLOC_MMAP_THRESHOLD_") or environ.get("MALLOC_TRIM_THRESHOLD_"):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 16 * 1024 * 1024)
    mallopt(m_trim_threshold, 32 * 1024 * 1024)


def main(environ=None):
    """Runs the runtime until SIGTERM/SIGINT; returns the exit status (0, or 1 on a start-up error)."""
    environ = os.environ if environ is None else environ
    state = {"serving": False, "signals": 0}
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)

    def on_signal(signum, frame):
        if not state["serving"]:
            os._exit(0)  # still loading: nothing to clean up
        state["signals"] += 1

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.set_wakeup_fd(wake_write)

    try:
        config = load_config(environ)
    except ConfigError as exc:
        log.error(str(exc))
        return 1
    log.level = _LEVELS[config.log_level]
    _keep_freed_memory(environ)
    ready_path = config.ready_path
    _remove_quietly(ready_path)  # a ready file left by an earlier run must not announce us early
    started = time.monotonic()
    try:
        handler, handler_module = resolve_handler(config.handler)
        listener = open_listener(config)
    except ConfigError as exc:
        log.error(str(exc))
        return 1
    runtime = Runtime(handler, config.mode, config.enable_validation, config.handler_thread_safe, config.batch)
    server = Server(
        listener,
        runtime,
        config.max_message_bytes,
        config.spin_us / 1e6 if config.batch else 0.0,
        config.sidecar_features_path if config.payload_unchanged and config.mode == "payload" else None,
    )
    if config.batch and not config.handler_thread_safe:
        runtime.use_handler_thread(lambda: server._open_connections > 1)
    state["serving"] = True
    server.start()
    try:
        _write_ready_file(ready_path, config.batch)
    except OSError as exc:
        _remove_quietly(config.socket_path)
        log.error("cannot write ready file %s: %s" % (ready_path, exc.strerror or exc))
        return 1
    log.info(
        "runtime ready",
        handler=config.handler,
        handler_file=_module_file(handler_module),
        mode=config.mode,
        batch=config.batch,
        socket=config.socket_path,
        pid=os.getpid(),
        load_seconds=round(time.monotonic() - started, 3),
    )

    while state["signals"] == 0:
        try:
            select.select([wake_read], [], [])
            os.read(wake_read, 512)
        except InterruptedError:
            pass
    log.info("stopping: no new connections; finishing requests in progress")
    _remove_quietly(ready_path)
    _remove_quietly(config.socket_path)
    server.stop()
    while state["signals"] < 2 and not server.wait_drained(0.1):
        pass
    if state["signals"] >= 2:
        log.warn("second signal: exiting without waiting for requests in progress")
    log.info("stopped")
    return 0


def _found_file(handler_path):
    """The file the handler's top-level module was (or would be) imported from, or None."""
    top = handler_path.split(".")[0] if _is_identifier_path(handler_path) else ""
    if not top:
        return None
    module = sys.modules.get(top)
    if module is not None:
        return getattr(module, "__file__", None)
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, sys.path)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def check(environ=None):
    """What `asya up` runs for every actor before it starts anything (`asya_runtime.py --check`):
    reads the configuration as the runtime would, imports the handler's module and resolves the
    handler in the working directory, without creating a class handler (its __init__ may load a
    model) and without opening the socket. Prints one line on stdout,
    ``{"asya_check": {"ok", "handler", "module", "file", "error"?}}`` (``file``: the module's file
    that was found, or null), and returns 0 when the handler can be served, 2 when not."""
    environ = dict(os.environ if environ is None else environ)
    # The supervisor chooses the socket of each replica; it is not opened here.
    environ["ASYA_SOCKET_PATH"] = "/nonexistent/asya-check/rt.sock"
    handler_path = environ.get("ASYA_HANDLER", "").strip()
    result = {"ok": False, "handler": handler_path, "module": handler_path.rsplit(".", 1)[0] or None}
    try:
        config = load_config(environ)
        log.level = _LEVELS[config.log_level]
        handler, module = resolve_handler(config.handler, instantiate=False)
        result.update(ok=True, module=module.__name__, file=_module_file(module))
    except ConfigError as exc:
        result.update(error=str(exc), file=_found_file(handler_path))
    except BaseException as exc:  # a bug of the check itself must still answer
        result.update(error="checking ASYA_HANDLER=%s failed: %s: %s" % (handler_path, _type_name(type(exc)),
                                                                          _one_line(exc)),
                      file=_found_file(handler_path))
    sys.stdout.write(json.dumps({"asya_check": result}, ensure_ascii=False, default=str) + "\n")
    return 0 if result["ok"] else 2


def _informational_answer(arguments):
    """The text `--help` or `--version` prints (the runtime is configured only by environment
    variables and reads no other argument), or None to start serving."""
    if arguments == ["--version"]:
        return "asya-runtime %s\n" % __version__
    if arguments in (["--help"], ["-h"]):
        return __doc__.strip() + "\n"
    return None


def _run():
    if sys.argv[1:] == ["--check"]:
        status = check()
        sys.stdout.flush()
        os._exit(status)
    answer = _informational_answer(sys.argv[1:])
    if answer is not None:
        sys.stdout.write(answer)  # nothing else: no handler loaded, no socket, no log line
        sys.stdout.flush()
        os._exit(0)
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        # Connection threads may be blocked in recv() or in user code; do not wait for them.
        os._exit(status)


if __name__ == "__main__":
    _run()
