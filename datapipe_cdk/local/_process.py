"""Process utilities shared by every service module: run directory, pid files, waiting.

Each service runs in its own process group, logs to ``<run>/logs/<name>.log`` and records its PID in
``<run>/pids/<name>.pid``; it is stopped only by that PID, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class ServiceError(RuntimeError):
    """A service failed to start or become healthy; the message names it and shows its log tail."""


def say(message: str) -> None:
    """A progress line of the launcher (stdout, flushed at once)."""
    print(f"[stack] {message}", flush=True)


def jdk_tool(name: str) -> str:
    """A JDK executable (``java``, ``keytool``): ``$JAVA_HOME/bin/<name>`` when present, else on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / name).exists():
        return str(Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"{name} not found (it ships with the JDK): install a JDK 17+ or set JAVA_HOME")
    return found


def run_dir() -> Path:
    """The run directory (``$DATAPIPE_RUN_DIR`` or ``~/.cache/datapipe-cdk/run``) with its subdirectories."""
    default = Path.home() / ".cache" / "datapipe-cdk" / "run"
    root = Path(os.environ.get("DATAPIPE_RUN_DIR", default))
    for sub in ("logs", "data", "pids"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def log_path(name: str) -> Path:
    return run_dir() / "logs" / f"{name}.log"


def pid_path(name: str) -> Path:
    return run_dir() / "pids" / f"{name}.pid"


def data_dir(name: str) -> Path:
    """A per-service data directory under ``<run>/data/<name>``, created on demand."""
    path = run_dir() / "data" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (mode 600): for generated credentials.

    Any older file is removed first, so the new one is created with mode 600 and is never readable by
    others, whatever the umask or the old file's mode. Text is written as UTF-8.
    """
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)


def _start_ticks(pid: int) -> str | None:
    """The process start time (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command name) may contain spaces; the fields after its closing parenthesis do not.
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_record(name: str) -> tuple[int, str | None] | None:
    try:
        fields = pid_path(name).read_text().split()
        return int(fields[0]), (fields[1] if len(fields) > 1 else None)
    except (FileNotFoundError, ValueError, IndexError):
        return None


def read_pid(name: str) -> int | None:
    """The PID recorded for ``name``, or None when there is no pid file."""
    record = _pid_record(name)
    return record[0] if record else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if so.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return reaped == 0


def is_running(name: str) -> bool:
    """True when the pid file of ``name`` names a live process that is still the one we started.

    The pid file also records the process start time, so a PID reused by another process after a
    reboot or crash is never mistaken for the service (and never signalled by ``stop_process``).
    """
    record = _pid_record(name)
    if record is None or not _alive(record[0]):
        return False
    pid, started = record
    return started is None or started == _start_ticks(pid)


def start_process(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached in its own process group; output goes to ``logs/<name>.log``.

    ``env`` is added to the current environment. Returns the PID, also written to ``pids/<name>.pid``.
    """
    log = log_path(name)
    full_env = {**os.environ, **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    pid_path(name).write_text(f"{proc.pid} {_start_ticks(proc.pid) or ''}\n")
    return proc.pid


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by ``pid`` (or just ``pid`` when it leads none)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_process(name: str, timeout: float = 20.0) -> bool:
    """Stop ``name`` by the PID in its pid file: SIGTERM, then SIGKILL after ``timeout`` seconds.

    The signal goes to the process group that ``start_process`` created for that PID (its own session),
    so helpers a service spawned stop with it. Returns True when a live process was stopped; the pid
    file is removed either way.
    """
    pid = read_pid(name)
    stopped = False
    if pid is not None and is_running(name):
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        stopped = True
    pid_path(name).unlink(missing_ok=True)
    return stopped


PROBE_ERRORS: tuple[type[Exception], ...] = (ServiceError, OSError, subprocess.TimeoutExpired)
"""What a status probe raises when its service answers wrongly or not at all."""


def service_status(name: str, probe: Callable[[], str | None]) -> dict[str, str]:
    """``{name: state}`` for a service's ``status()``: ``stopped``, ``healthy (pid N, <detail>)`` or
    ``unhealthy (pid N)[: <reason>]``.

    ``probe`` runs only while the service's process is alive. It returns the detail shown when the
    service is healthy, None when it is unhealthy without a stated reason, or raises one of
    ``PROBE_ERRORS`` whose message is the reason.
    """
    if not is_running(name):
        return {name: "stopped"}
    pid = read_pid(name)
    try:
        detail = probe()
    except PROBE_ERRORS as exc:
        return {name: f"unhealthy (pid {pid}): {exc}"}
    return {name: f"healthy (pid {pid}, {detail})" if detail is not None else f"unhealthy (pid {pid})"}


def log_tail(name: str, lines: int = 20) -> str:
    """The last ``lines`` lines of the service's log (empty when there is no log)."""
    try:
        text = log_path(name).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    log: str | None = None,
    interval: float = 0.5,
) -> None:
    """Poll ``check`` until it is true; raise ServiceError naming ``what`` (and ``log``'s tail) on timeout.

    When ``log`` names a service whose process has died, fail at once instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            if check():
                return
        except Exception as exc:  # a failing probe just means "not yet"
            last_error = f" (last probe error: {exc})"
        died = log is not None and read_pid(log) is not None and not is_running(log)
        if died or time.monotonic() >= deadline:
            reason = "exited" if died else f"not ready after {timeout:.0f}s"
            tail = f"\n--- last lines of {log_path(log)} ---\n{log_tail(log)}" if log else ""
            raise ServiceError(f"{what}: {reason}{last_error}{tail}")
        time.sleep(interval)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connect to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, what: str, log: str | None = None) -> None:
    """Wait until ``host:port`` accepts TCP connections."""
    wait_until(lambda: port_open(host, port), timeout, f"{what} on {host}:{port}", log)


def ensure_port_free(host: str, port: int, what: str, env_var: str) -> None:
    """Fail early, naming the variable to change, when something else already listens on ``port``."""
    if port_open(host, port):
        raise ServiceError(f"{what}: {host}:{port} is already in use; stop that process or set {env_var}")
