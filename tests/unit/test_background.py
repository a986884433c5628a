"""widgets.apps.background: one job at a time per page on a shared bounded pool, the newest request wins,
failures are reported, a closed session cancels its work."""
from __future__ import annotations

import threading
import time

import pytest

from widgets.apps.background import Background, JobPool


def test_inline_job_delivers_and_clears_busy():
    bg, seen = Background(threaded=False), []
    bg.submit(lambda a, b: a + b, 2, 3, on_done=seen.append)
    assert seen == [5] and not bg.busy and bg.error == ""


def test_failure_is_reported_not_raised():
    bg, seen = Background(threaded=False), []
    bg.submit(lambda: 1 / 0, on_done=seen.append)
    assert seen == [] and not bg.busy and "ZeroDivisionError" in bg.error
    bg.submit(lambda: 1, on_done=seen.append)  # the next success clears the error
    assert seen == [1] and bg.error == ""


def test_requests_during_a_job_wait_and_only_the_newest_is_drawn():
    release, started = threading.Event(), threading.Event()
    ran, drawn = [], []

    def job(x):
        ran.append(x)
        if x == 0:
            started.set()
            release.wait(10)
        return x

    bg = Background()
    bg.submit(job, 0, on_done=drawn.append)
    started.wait(10)
    assert bg.busy
    for x in (1, 2, 3):  # 1 and 2 are replaced while waiting; 0's result is stale
        bg.submit(job, x, on_done=drawn.append)
    release.set()
    bg.wait(10)
    assert ran == [0, 3] and drawn == [3] and not bg.busy
    bg.submit(job, 4, on_done=drawn.append)  # the worker has ended: a new one starts
    bg.wait(10)
    assert drawn == [3, 4]


def test_a_failing_draw_is_reported():
    bg = Background(threaded=False)
    bg.submit(lambda: 1, on_done=lambda r: [][r])
    assert "IndexError" in bg.error and not bg.busy


def test_pages_share_a_bounded_pool():
    """Jobs of different pages queue on the server's pool: never more running than its workers."""
    pool, lock, running, peak = JobPool(2), threading.Lock(), [0], [0]

    def job(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return x

    pages, drawn = [Background(pool=pool) for _ in range(6)], []
    for i, bg in enumerate(pages):
        bg.submit(job, i, on_done=drawn.append)
    for bg in pages:
        bg.wait(10)
    assert sorted(drawn) == list(range(6)) and peak[0] == 2
    pool.close()


def test_cancel_stops_the_running_job_at_its_next_check_and_drops_the_waiting_one():
    """What a closed browser session does: the long job stops, nothing more is drawn or run."""
    started, steps, ran, drawn = threading.Event(), [], [], []
    bg = Background()

    def long_job():
        started.set()
        for i in range(1000):
            bg.check()  # what a progress callback does
            steps.append(i)
            time.sleep(0.01)
        return "finished"

    bg.submit(long_job, on_done=drawn.append)
    started.wait(10)
    bg.submit(ran.append, "waiting", on_done=drawn.append)
    bg.cancel()
    bg.wait(10)
    assert len(steps) < 1000 and ran == [] and drawn == [] and bg.error == ""
    bg.submit(ran.append, "after", on_done=drawn.append)  # a closed session starts nothing new
    bg.wait(1)
    assert ran == [] and bg.cancelled


def test_a_newer_request_stops_a_job_that_checks():
    started, steps, drawn = threading.Event(), [], []
    bg = Background()

    def long_job():
        started.set()
        for i in range(1000):
            bg.check()
            steps.append(i)
            time.sleep(0.01)
        return "stale"

    bg.submit(long_job, on_done=drawn.append)
    started.wait(10)
    bg.submit(lambda: "newest", on_done=drawn.append)
    bg.wait(10)
    assert drawn == ["newest"] and len(steps) < 1000


def test_closing_the_pool_cancels_its_pages():
    pool = JobPool(1)
    bg, drawn = Background(pool=pool), []
    pool.close()
    bg.submit(lambda: 1, on_done=drawn.append)
    assert bg.cancelled and drawn == []
    with pytest.raises(ValueError, match="positive int"):
        JobPool(0)
