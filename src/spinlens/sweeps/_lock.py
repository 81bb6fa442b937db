"""An advisory lock on a sweep directory, so that two runs never work on one folder at once.

The lock is the file ``OUT/.lock``: a small JSON record ``{pid, host, started, created_at}`` of the process
that holds it. It is created atomically (written under a temporary name, then hard-linked onto
``.lock``, which fails if the name exists), so a lock file is always complete. A lock is *stale*, and is
taken over, when it was made on this host and its process is gone: the pid is not running, is a zombie,
or is running with another start time (the pid was reused). A lock made on another host cannot be checked
from here and is never broken automatically; the message names the file to delete.

The lock is advisory: it keeps spinlens runs apart, nothing else. ``open_sweep`` does not take it (reading
is always safe: point files appear atomically).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from spinlens.errors import InvalidParameterError

__all__ = ["SweepLock", "SweepLockedError"]

LOCK_NAME = ".lock"


class SweepLockedError(InvalidParameterError):
    """Another live process holds the sweep directory."""


def _proc_start_time(pid: int) -> str | None:
    """The start time of a process (Linux: field 22 of /proc/PID/stat, in clock ticks since boot)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces: split after the last ')'
    rest = stat.rsplit(")", 1)[-1].split()
    try:
        state, start = rest[0], rest[19]
    except IndexError:  # pragma: no cover - malformed
        return None
    return None if state in ("Z", "X") else start


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # pragma: no cover
        return False
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        try:
            if "State:\tZ" in status.read_text():
                return False
        except OSError:  # pragma: no cover
            pass
    return True


def _me() -> dict:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "started": _proc_start_time(pid), "created_at": time.time()}


def is_stale(rec: dict) -> bool:
    """True if the lock record ``rec`` belongs to a process of this host that no longer runs."""
    if rec.get("host") != socket.gethostname():
        return False
    try:
        pid = int(rec["pid"])
    except (KeyError, TypeError, ValueError):
        return True
    if not _pid_alive(pid):
        return True
    started = rec.get("started")
    now = _proc_start_time(pid)
    return started is not None and now is not None and str(started) != str(now)


class SweepLock:
    """``with SweepLock(out):`` holds ``out/.lock`` for the duration, or raises `SweepLockedError`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.held = False

    def read(self) -> dict | None:
        try:
            rec = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return rec if isinstance(rec, dict) else {}

    def acquire(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        me = _me()
        tmp = self.root / f".lock-new-{me['pid']}-{int(me['created_at'] * 1e6)}"
        tmp.write_text(json.dumps(me) + "\n")
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    self.held = True
                    return
                except FileExistsError:
                    rec = self.read()
                    if rec is None:  # released meanwhile
                        continue
                    if is_stale(rec) or rec == {}:
                        # stale (dead process on this host) or unreadable: take it over, unless it changed
                        # hands meanwhile
                        if self.read() == rec:
                            self.path.unlink(missing_ok=True)
                        continue
                    raise SweepLockedError(self._busy_message(rec)) from None
            raise SweepLockedError(f"The 'out' directory {str(self.root)!r} is being locked and unlocked by "
                                   "another spinlens sweep; try again.")
        finally:
            tmp.unlink(missing_ok=True)

    def _busy_message(self, rec: dict) -> str:
        when = rec.get("created_at")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if isinstance(when, (int, float)) else "?"
        where = "this host" if rec.get("host") == socket.gethostname() else f"host {rec.get('host')!r}"
        return (f"The 'out' directory {str(self.root)!r} is in use by another spinlens sweep (pid {rec.get('pid')} "
                f"on {where}, since {since}); wait for it to end, or delete {str(self.path)!r} if that run is gone.")

    def release(self) -> None:
        if not self.held:
            return
        rec = self.read()
        if rec and rec.get("pid") == os.getpid() and rec.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
