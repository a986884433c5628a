"""widgets.apps.background: one job at a time, the newest request wins, failures are reported."""
from __future__ import annotations

import threading

from widgets.apps.background import Background


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
