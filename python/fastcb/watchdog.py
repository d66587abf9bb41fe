"""A watchdog that ends a multi-rank fit when a rank stays alive but stops making progress.

Without it, the other ranks wait inside their next collective for the process group's timeout
(30 minutes by default in torch). During a fit, each rank's main thread notes where it is
(`beat`: epoch, batch, phase: a few attribute writes, no I/O) and a thread publishes that to the
process group's store every `interval` seconds, with whether the main thread is waiting inside a
collective (its innermost Python frame is in `torch.distributed`, DDP or autograd). When no rank
has moved for `timeout` seconds, the first rank to see it files one report in the store naming
the rank(s) that stopped (the least advanced of those not waiting in a collective) and where;
the rank that stopped adds its main thread's stack, and its main thread is interrupted with
`RankStalledError` (a signal: a Python loop, a lock or a queue wait of a data loader all
return to Python). Its fit ends the usual way (`on_train_end`, it leaves the group), so the
other ranks' collectives fail and their fits end too, with the same `RankStalledError`
(`explain`), after their `on_train_end`. A main thread that can't be interrupted (stuck inside
C code) gets `grace` seconds, then its process ends (`os._exit`, its child processes first).

`timeout` is `FASTCB_DIST_TIMEOUT` (seconds, default 120: longer than your slowest step,
validation pass or checkpoint write), the same that bounds the process group's collectives.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any

import torch.distributed as dist

from .errors import RankStalledError

__all__ = ["Watchdog", "RankStalledError", "dist_timeout", "explain"]

_WAITING_IN = tuple(os.sep.join(("torch", p)) for p in ("distributed", os.path.join("nn", "parallel"), "autograd"))
_SIGNAL = getattr(signal, "SIGUSR1", None)
_current: Watchdog | None = None  # the watchdog of this process's running (or last) fit
_count = 0  # fits watched in this process: the same sequence on every rank, so a key prefix per fit


def dist_timeout() -> float:
    """`FASTCB_DIST_TIMEOUT` in seconds (default 120); `ValueError` naming it if it is not a positive number."""
    raw = os.environ.get("FASTCB_DIST_TIMEOUT", "120")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"FASTCB_DIST_TIMEOUT: expected a positive number of seconds, got {raw!r}")
    return value


def _stack(frame: FrameType | None, limit: int = 12) -> str:
    return "".join(traceback.format_stack(frame, limit=limit)) if frame is not None else "(no Python frame)\n"


def _innermost_file(frame: FrameType | None) -> str:
    return frame.f_code.co_filename if frame is not None else ""


class Watchdog:
    """Watch this rank's fit in a process group of `world` ranks sharing `store` (see the module doc).

    `start()` from the thread that runs the fit; `beat(key, where)` from it at each step (`key`
    a tuple ordering the steps of a fit, `where` its description); `stop()` when the fit ends.
    """

    def __init__(self, store: dist.Store, rank: int, world: int, timeout: float | None = None,
                 interval: float | None = None, grace: float | None = None) -> None:
        global _count
        self.store, self.rank, self.world = store, rank, world
        self.timeout = dist_timeout() if timeout is None else float(timeout)
        self.interval = interval or min(max(self.timeout / 10, 0.05), 5.0)
        self.grace = grace or max(3 * self.interval, 2.0)
        self.prefix = f"fastcb/watchdog/{_count}/"
        _count += 1
        self.seq, self.where = 0, "starting the fit"
        self.key: tuple[Any, ...] = ()
        self.report: str | None = None  # the stall report, once there is one
        self.armed = False  # watching a running fit
        self._raised = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._main: threading.Thread | None = None
        self._old_handler: Any = None  # what signal.signal returned

    # -- main thread ---------------------------------------------------------------------------------
    def start(self) -> Watchdog:
        """Start watching (and make this thread the one a stall interrupts)."""
        global _current
        _current = self
        self._main = threading.current_thread()
        if _SIGNAL is not None and self._main is threading.main_thread():
            self._old_handler = signal.signal(_SIGNAL, self._on_signal)
        self.armed = True
        self._publish()
        self._thread = threading.Thread(target=self._run, name="fastcb-watchdog", daemon=True)
        self._thread.start()
        return self

    def beat(self, key: tuple[Any, ...], where: str) -> None:
        """This rank is at `key` (an orderable tuple), described by `where`."""
        self.seq += 1
        self.key, self.where = key, where

    def stop(self, done: str = "finished") -> None:
        """Stop watching: the fit is over on this rank (a stall is no longer raised here)."""
        if not self.armed:
            return
        self.armed = False
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.interval + 1)
        if self._old_handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(_SIGNAL, self._old_handler)  # type: ignore[arg-type]  # not None: a handler was set for it
        self._old_handler = None
        try:
            self._set(f"rank{self.rank}", json.dumps({"seq": self.seq, "done": done}))
        except Exception:  # the store went away with rank 0
            pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.armed and self.report is not None and not self._raised:
            self._raised = True  # raised once; the fit's end runs undisturbed
            raise RankStalledError(self.report)

    # -- the store -----------------------------------------------------------------------------------
    def _set(self, k: str, v: str) -> None:
        self.store.set(self.prefix + k, v)

    def _get(self, k: str) -> str | None:
        full = self.prefix + k
        return self.store.get(full).decode() if self.store.check([full]) else None

    def _main_frame(self) -> FrameType | None:
        # (`ident` is None only before the thread starts: then no frame, as for any unknown id)
        return sys._current_frames().get(self._main.ident) if self._main is not None else None  # type: ignore[arg-type]

    def _publish(self) -> None:
        waiting = any(p in _innermost_file(self._main_frame()) for p in _WAITING_IN)
        self._set(f"rank{self.rank}", json.dumps({"seq": self.seq, "key": list(self.key), "where": self.where,
                                                  "waiting": waiting}))

    # -- the watching thread -------------------------------------------------------------------------
    def _run(self) -> None:
        seen: dict[int, tuple[int, float]] = {}  # rank -> (seq, local time it last changed)
        try:
            while not self._stop.wait(self.interval):
                self._publish()
                report = self._get("stall")
                if report is None:
                    report = self._check(seen)
                if report is not None:
                    self._act(json.loads(report))
                    return
        except Exception:  # the store is gone (rank 0 ended): the process group's own errors take over
            return

    def _check(self, seen: dict[int, tuple[int, float]]) -> str | None:
        """The stall report filed now, if no rank moved for `timeout` seconds (else None)."""
        now, states = time.monotonic(), {}
        for r in range(self.world):
            raw = self._get(f"rank{r}")
            if raw is None:
                return None  # a rank not started yet
            st = json.loads(raw)
            if "done" in st:
                continue
            states[r] = st
            if seen.get(r, (None,))[0] != st["seq"]:
                seen[r] = (st["seq"], now)
        if not states or any(now - seen[r][1] < self.timeout for r in states):
            return None
        running = {r: s for r, s in states.items() if not s["waiting"]} or states
        least = min(tuple(s["key"]) for s in running.values())
        stopped = sorted(r for r, s in running.items() if tuple(s["key"]) == least)
        report = {"stopped": stopped, "states": {str(r): s for r, s in states.items()}, "by": self.rank,
                  "timeout": self.timeout}
        if self.store.add(self.prefix + "filed", 1) != 1:  # another rank filed it first
            return None
        text = json.dumps(report)
        self._set("stall", text)
        return text

    def _act(self, report: dict[str, Any]) -> None:
        """Tell what happened; interrupt this rank's fit if it is one that stopped."""
        stopped = self.rank in report["stopped"]
        frame = self._main_frame()
        if stopped:
            self._set(f"stack{self.rank}", _stack(frame))
        deadline = time.monotonic() + self.grace
        stacks: dict[int, str | None] = {}
        for r in report["stopped"]:  # wait (briefly) for the stopped ranks' stacks
            while True:
                s = self._get(f"stack{r}")
                if s is not None or time.monotonic() > deadline:
                    stacks[r] = s
                    break
                time.sleep(0.02)
        self.report = _message(report, stacks)
        self.store.add(self.prefix + "read", 1)
        print(f"[rank {self.rank}] fastcb watchdog: {self.report}", file=sys.stderr, flush=True)
        if not stopped:
            return
        # the others hold the report before this rank leaves (then their collectives fail)
        others = self.world - 1
        while self.store.add(self.prefix + "read", 0) < others + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        self._interrupt()
        if self._stop.wait(self.grace):
            return  # the fit ended: on_train_end ran
        print(f"[rank {self.rank}] fastcb watchdog: the main thread did not return to Python within "
              f"{self.grace:.0f} s; ending the process", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(all_threads=True)
        for child in multiprocessing.active_children():
            child.kill()
        os._exit(1)

    def _interrupt(self) -> None:
        ident = self._main.ident if self._main is not None else None
        assert ident is not None  # start() set the thread of the fit, which is running
        if self._old_handler is not None:
            assert _SIGNAL is not None  # the handler was set for it
            signal.pthread_kill(ident, _SIGNAL)
        else:  # a fit outside the main thread: raised at its next Python instruction
            import ctypes

            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                       ctypes.py_object(RankStalledError))


def _message(report: dict[str, Any], stacks: dict[int, str | None]) -> str:
    states = {int(r): s for r, s in report["states"].items()}
    parts = []
    for r in report["stopped"]:
        parts.append(f"rank {r} stopped making progress at {states[r]['where']}")
    lead = "; ".join(parts) + f" (no rank moved for {report['timeout']:g} s, FASTCB_DIST_TIMEOUT)"
    others = [f"rank {r} at {s['where']}{' (waiting in a collective)' if s['waiting'] else ''}"
              for r, s in sorted(states.items()) if r not in report["stopped"]]
    text = lead + (". Others: " + "; ".join(others) if others else "")
    for r in report["stopped"]:
        stack = stacks.get(r)
        if stack:
            text += f"\nRank {r}'s main thread:\n{stack.rstrip()}"
    return text


def explain(exc: BaseException) -> BaseException:
    """`exc`, or the `RankStalledError` behind it when a collective failed because a rank stalled."""
    wd = _current
    if wd is None or not wd.armed or isinstance(exc, RankStalledError) or not isinstance(exc, Exception):
        return exc
    if wd.report is None:
        try:
            raw = wd._get("stall")
        except Exception:
            raw = None
        if raw is None:
            return exc
        wd.report = _message(json.loads(raw), {})
    return RankStalledError(wd.report)
