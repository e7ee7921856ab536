"""`collect serve`: the same tick as `collect run`, on a schedule, until stopped.

APScheduler's trigger (`--every` or `--cron`) says when a tick is due; the ticks run one at a time in a
thread of their own, and the scheduled runs that come due while one runs are coalesced into one tick
right after it. With `--every` the first tick runs at start; with `--cron` only at the cron times (a
cron schedule may be there to keep contacts inside hours). SIGTERM and SIGINT stop the service after
the tick in progress has finished, so a tick is never cut in the middle by a clean shutdown; a second
signal while stopping changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import threading

DEFAULT_EVERY = "15m"
# The longest --every. serve stands in for cron, and a tick less often than once a year schedules no
# dunning; a far longer one overflows the dates APScheduler works out (datetime ends in the year 9999)
MAX_EVERY_S = 366 * 86400
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # crontab numbers: 0 and 7 are Sunday


def parse_every(text: str) -> int:
    """'15m' -> seconds; also '30s', '1h', '1d' (at most 366d)."""
    if not text.strip():  # `--every "$INTERVAL"` with the variable unset: not the default 15m in silence
        raise ValueError("--every is empty; write 30s, 15m, 1h or 1d")
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"'{text}' is not an interval; write 30s, 15m, 1h or 1d")
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if seconds > MAX_EVERY_S:
        raise ValueError(f"'{text}' is too long an interval; at most 366d")
    return seconds


def local_zone():
    """The time zone the schedule is read in: $TZ, else the system's (as crontab). ValueError, said as
    one line before anything runs, for a TZ that names no zone (the scheduler raised it with a traceback,
    even for --every, where local time plays no part)."""
    from zoneinfo import ZoneInfoNotFoundError

    import tzlocal

    try:
        return tzlocal.get_localzone()
    except ZoneInfoNotFoundError:
        raise ValueError(f"TZ={os.environ.get('TZ', '')!r} is not a time zone: set it to an IANA name such as "
                         "America/Lima, or unset it for the system's") from None


def cron_trigger(expr: str):
    """The APScheduler trigger of a crontab expression, read as crontab reads it (local time).

    APScheduler 3 numbers the days of the week from Monday (0 = mon), crontab from Sunday, so `1-5`
    would be Tuesday to Saturday: numeric days are rewritten as the names crontab means."""
    from apscheduler.triggers.cron import CronTrigger

    if not expr.strip():  # `--cron "$SCHEDULE"` with the variable unset: not ticking around the clock instead
        raise ValueError("--cron is empty; write a crontab expression, e.g. '0 8-20 * * mon-sat'")
    fields = expr.split()
    if len(fields) == 5:
        fields[4] = ",".join(_weekday_names(part) for part in fields[4].split(","))
    try:
        trigger = CronTrigger.from_crontab(" ".join(fields), timezone=local_zone())
    except ValueError as exc:  # APScheduler's words do not say which option they are about
        raise ValueError(f"--cron '{expr}' is not a crontab expression (minute hour day month weekday): "
                         f"{exc}") from None
    # a date that never comes (31 2 = February 31st): serve would wait forever without a word
    if trigger.get_next_fire_time(None, dt.datetime.now(local_zone())) is None:
        raise ValueError(f"--cron '{expr}' never fires: no date matches it")
    return trigger


def _weekday_names(part: str) -> str:
    """One item of a crontab day-of-week list ('1-5', '01', '*/2', '0', 'mon-fri', 'sun-tue') as day names.
    Names are crontab's too: `sun-tue` is Sunday to Tuesday (0-2), which APScheduler, counting from
    Monday, would refuse as a range running backwards."""
    match = re.fullmatch(r"(\*|\d+|[a-z]{3})(?:-(\d+|[a-z]{3}))?(?:/(\d+))?", part.lower())
    if not match or part == "*":
        return part  # a mistake CronTrigger reports
    first, last, step = match.groups()
    number = {**{name: n for n, name in enumerate(_WEEKDAYS[:7])}, **{str(n): n for n in range(8)}}
    first, last = (x if x in (None, "*") else number.get(x.lstrip("0") or "0", -1) for x in (first, last))
    low = 0 if first == "*" else first
    high = 7 if first == "*" or (step and last is None) else (first if last is None else last)
    if -1 in (low, high) or low > high or step is not None and not int(step):
        return part
    days = range(low, high + 1, int(step or 1))
    return ",".join(dict.fromkeys(_WEEKDAYS[day] for day in days))


class Ticks:
    """Runs `tick(now)` whenever a run is due, one at a time, until stopped.

    The scheduler's job only raises the `due` flag; `run` lowers it and ticks. However many runs come
    due during a tick, the flag is up once afterwards: exactly one tick follows, which is coalescing.
    (A job that ran the tick itself, under APScheduler's max_instances=1, would drop each run that came
    due meanwhile, with a warning each.)"""

    def __init__(self, tick, log=print):
        self.tick, self.log = tick, log
        self.due = threading.Event()
        self.stopping = False

    def fire(self) -> None:
        self.due.set()

    def stop(self, signum: int | None = None, _frame=None) -> None:
        """The signal handler. It must not fail nor block on a second signal: a user presses Ctrl-C
        again, systemd follows Ctrl-C with SIGTERM; the tick in progress still finishes."""
        name = signal.Signals(signum).name if signum else "a stop"
        if self.stopping:
            self.log(f"received {name}: already stopping after the current tick")
            return
        self.stopping = True  # before touching the Event's lock, so that a nested handler never does
        self.due.set()
        self.log(f"received {name}: stopping after the current tick")

    def run(self) -> None:
        while True:
            self.due.wait()
            self.due.clear()
            if self.stopping:  # checked after clear(): a stop that comes in between still ends the loop
                return
            self._tick()

    def _tick(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        try:
            self.tick(now)
        except Exception as exc:  # noqa: BLE001 - one failed tick must not stop the service
            from .store import one_line

            self.log(f"tick at {now.isoformat(timespec='seconds')} failed: {one_line(exc)}")


def serve(tick, every: str | None = None, cron: str | None = None, log=print, exiting: bool = False) -> None:
    """Call `tick(now)` on the schedule until SIGTERM/SIGINT; from the main thread (signals). ValueError,
    before anything runs, for a bad or empty schedule. `exiting`: the process ends when this returns (the
    command line), so after a stop SIGTERM and SIGINT are ignored: systemd's SIGTERM after a Ctrl-C, coming
    while the process exits, would otherwise meet the default handler and kill it (exit 143)."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    ticks = Ticks(tick, log)
    # `is None`, not falsiness: an empty --every or --cron is an error (ValueError), not the default
    if cron is not None:
        trigger = cron_trigger(cron)
    else:
        trigger = IntervalTrigger(seconds=parse_every(DEFAULT_EVERY if every is None else every))
    if cron is None:
        ticks.fire()  # --every: tick at once, then every interval from now
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "misfire_grace_time": None}, timezone=local_zone())
    scheduler.add_job(ticks.fire, trigger, id="tick")
    previous = {sig: signal.signal(sig, ticks.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    # The ticks run in a thread, so that the main thread, where Python runs signal handlers, is never
    # inside the tick (or writing its output) when a signal comes
    worker = threading.Thread(target=ticks.run, name="collect-tick")
    try:
        scheduler.start()
        worker.start()
        worker.join()
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        for sig, handler in previous.items():
            # ignored, not a Python handler: Python's shutdown puts its own handlers back to the default
            signal.signal(sig, signal.SIG_IGN if exiting and ticks.stopping else handler)
