"""The thread contract of the compiled objects (README, "Threads"): calls from several threads
on one object run one at a time (a waiting thread releases the GIL), so no update is lost;
an object used again from inside one of its own calls is a RuntimeError naming it."""

import threading

import numpy as np
import pytest
import torch

from fastcb import SmoothenValue, Stepper, WeightedMean

THREADS = 8


def run_threads(work, n=THREADS):
    errors, barrier = [], threading.Barrier(n)

    def target(i):
        barrier.wait()
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_tensor_smoothing_from_many_threads_loses_nothing():
    s = SmoothenValue(0.5)
    per_thread = 200

    def work(i):
        for _ in range(per_thread):
            s.add_value(torch.full((64,), 3.0))  # torch releases the GIL inside its ops

    run_threads(work)
    assert s.n == THREADS * per_thread
    torch.testing.assert_close(s.smooth, torch.full((64,), 3.0))


def test_python_stepper_from_many_threads_gives_each_step_once():
    n_iter = THREADS * 50
    s = Stepper((0.0, float(n_iter)), n_iter, lambda a, b, pct: (torch.tensor(pct) * b).item())
    seen = []

    def work(i):
        for _ in range(50):
            seen.append(round(s.step()))
            s.peek(3)

    run_threads(work)
    assert s.n == n_iter and sorted(seen) == list(range(1, n_iter + 1))


def test_merging_an_accumulator_into_itself_doubles_it():
    m = WeightedMean()
    m.extend([1.0, 2.0])
    m.merge(m)
    assert (m.count, m.sum) == (4, 6.0)


def test_extend_and_add_from_many_threads_lose_no_value():
    m = WeightedMean()
    chunk = np.arange(100_000, dtype=np.float64)[::-1]

    def work(i):
        for _ in range(5):
            m.extend(chunk)
            m.add(1.0, 2.0)

    run_threads(work)
    assert m.count == THREADS * 5 * (chunk.size + 1)
    assert m.sum == THREADS * 5 * (chunk.sum() + 2.0)
    assert m.total_weight == THREADS * 5 * (chunk.size + 2.0)


def test_using_a_stepper_from_inside_its_own_func_is_a_clear_error():
    box = {}

    def func(start, end, pct):
        return box["s"].step()

    box["s"] = Stepper((1.0, 0.0), 10, func)
    with pytest.raises(RuntimeError, match="^Stepper: used again from inside one of its own calls"):
        box["s"].step()
    assert box["s"].n == 0
    for change in [lambda s: setattr(s, "n", 3), lambda s: s.restart(), lambda s: s.load_state_dict(s.state_dict())]:
        box["s"] = Stepper((1.0, 0.0), 10, lambda a, b, p, change=change: change(box["s"]))
        with pytest.raises(RuntimeError, match="^Stepper: used again"):
            box["s"].step()
        assert box["s"].n == 0


def test_a_func_may_read_its_own_stepper():
    box = {}
    box["s"] = s = Stepper((1.0, 0.0), 10, lambda a, b, p: box["s"].n + p * box["s"].start)
    assert s.step() == 0.1 and s.n == 1 and repr(s).endswith("n=1)")


def test_compiled_steps_and_peeks_from_many_threads_give_each_step_once():
    # A compiled step takes no lock (the GIL serializes it); a long peek holds the lock with
    # the GIL released: steps must wait for it, and none may be lost or repeated.
    n_iter = THREADS * 200
    s = Stepper((0.0, float(n_iter)), n_iter)
    seen = []

    def work(i):
        for _ in range(200):
            seen.append(round(s.step()))
            if i % 2:
                s.peek(20_000)

    run_threads(work)
    assert s.n == n_iter and sorted(seen) == list(range(1, n_iter + 1))


def test_number_smoothing_from_many_threads_counts_every_value():
    s = SmoothenValue(0.5)

    def work(i):
        for _ in range(2000):
            s.add_value(3.0)
            s.state_dict()

    run_threads(work)
    assert s.n == THREADS * 2000 and s.smooth == 3.0
