"""`collect serve`: the same tick as `collect run`, on a schedule, until stopped.

APScheduler runs one tick at a time (max_instances=1); ticks that were missed while one was running or
while the process was stopped are coalesced into one; SIGTERM and SIGINT stop the scheduler after the
tick in progress has finished, so a tick is never cut in the middle by a clean shutdown.
"""

from __future__ import annotations

import datetime as dt
import re
import signal


def parse_every(text: str) -> int:
    """'15m' -> seconds; also '30s', '1h'."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"'{text}' is not an interval; write 30s, 15m, 1h or 1d")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def serve(tick, every: str | None = None, cron: str | None = None, log=print) -> None:
    """Call `tick(now)` on the schedule until SIGTERM/SIGINT."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    trigger = CronTrigger.from_crontab(cron) if cron else IntervalTrigger(seconds=parse_every(every or "15m"))
    scheduler = BlockingScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})

    def job():
        now = dt.datetime.now(dt.timezone.utc)
        try:
            tick(now)
        except Exception as exc:  # noqa: BLE001 - one failed tick must not stop the service
            log(f"tick at {now.isoformat(timespec='seconds')} failed: {exc}")

    scheduler.add_job(job, trigger, id="tick", next_run_time=dt.datetime.now(dt.timezone.utc))

    def stop(signum, _frame):
        log(f"received {signal.Signals(signum).name}: stopping after the current tick")
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
