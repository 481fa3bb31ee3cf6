"""god writes its counters file at most once every COUNTERS_EVERY_S: 1,000 apps stopping one by one made it write
every app's counters after each (`delete all` cost god ~4 s of CPU); and no change is ever left unwritten."""

from __future__ import annotations

import time

from pmsd.god.daemon import COUNTERS_EVERY_S
from pmsd.god.loop import Loop
from pmsd.god.throttle import ThrottledWrite


def _turns(loop: Loop, throttled: ThrottledWrite, until: float) -> None:
    """The god loop's turns (before_wait writes if due) while its timer is pending, then its before_wait."""
    while time.monotonic() < until and throttled.timer is not None:
        loop.run_once(throttled.write_if_due)
    throttled.write_if_due()


def test_the_first_change_is_written_at_once_and_a_burst_after_it_once_more() -> None:
    loop = Loop()
    writes: list[float] = []
    throttled = ThrottledWrite(loop, lambda: writes.append(time.monotonic()), every_s=0.05)
    throttled.changed()
    throttled.write_if_due()
    assert len(writes) == 1  # at once
    for _ in range(1000):  # a burst: every signal changes a counter
        throttled.changed()
        throttled.write_if_due()
    assert len(writes) == 1 and throttled.timer is not None
    _turns(loop, throttled, time.monotonic() + 2)
    assert len(writes) == 2 and not throttled.dirty  # the trailing write: nothing lost
    assert writes[1] - writes[0] >= 0.05


def test_nothing_changed_nothing_written_and_write_now_cancels_the_timer() -> None:
    loop = Loop()
    writes: list[int] = []
    throttled = ThrottledWrite(loop, lambda: writes.append(1), every_s=10)
    throttled.write_if_due()
    assert writes == []
    throttled.changed()
    throttled.write_if_due()
    throttled.changed()
    throttled.write_if_due()
    assert writes == [1] and throttled.timer is not None
    throttled.write_now()  # god stopping
    assert writes == [1, 1] and throttled.timer is None and not throttled.dirty


def test_god_writes_counters_no_later_than_a_batch_of_signals_may_take() -> None:
    from pmsd.god.daemon import BUSY_S

    assert COUNTERS_EVERY_S <= BUSY_S
