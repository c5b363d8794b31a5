"""Progress of long work wherever the program runs: a bar on a terminal, a plain line at a steady
cadence when output goes to a file, a pipe or a log (scripts, CI, ``nohup``), and one line that
updates itself in a notebook (HTML through IPython's display; no widget package needed).

A ``Meter`` counts steps of one kind of work (epochs, trials, folds, rows) and shows how many are
done of how many, the latest numbers, the time elapsed and the time left at the current pace.
Nothing here imports torch; Rich is imported only when a terminal bar is drawn.
"""

from __future__ import annotations

import html
import sys
import time

LINE_EVERY = 10.0  # seconds between plain progress lines (the first and the last are always printed)
SHOW_AFTER = 3.0  # work that is usually quick (export, explain, attack) shows progress once it takes this long


def clock(seconds: float) -> str:
    """``seconds`` as M:SS, or H:MM:SS from an hour on.

    >>> clock(65), clock(3725)
    ('1:05', '1:02:05')
    """
    seconds = max(0, int(round(seconds)))
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython is looked at only if it is already loaded)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Meter:
    """Progress of ``total`` steps of one kind of work.

    Args:
        what: the step's name, e.g. ``"epoch"``, ``"trial"``, ``"fold"``.
        total: how many steps the work has (an upper bound where it can stop early).
        out: a Rich console or a text stream; None shows nothing.
        done: steps already done (a resumed run), not counted in the pace.
        after: show nothing until this many seconds have passed (work that is usually quick).
        every: seconds between plain lines when output is not a terminal.
        log: also called with each line printed above the progress (a finished trial or fold),
            whatever ``out`` is.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with Meter("trial", 2, out) as meter:
        ...     meter.update(1, {"accuracy": 0.9})
        ...     meter.update(2, {"accuracy": 0.95})
        >>> out.getvalue().splitlines()[0].startswith("trial 1/2")
        True
    """

    def __init__(self, what: str, total: int, out, *, done: int = 0, after: float = 0.0, every: float = LINE_EVERY,
                 log=None):
        self.what, self.total, self.out, self.log = what, max(int(total), 1), out, log
        self.done = self._first = int(done)
        self.after, self.every = after, every
        self._started = time.perf_counter()
        self._view = None if out is None else _view_for(out)
        self._shown = False

    # -- what callers use ------------------------------------------------------------------------

    def update(self, done: int, numbers: dict | None = None, line: str | None = None) -> None:
        """``done`` steps finished; ``numbers`` the latest figures to show; ``line`` a line to print
        above the progress (a finished trial or fold)."""
        self.done = min(int(done), self.total)
        if line and self.log is not None:
            self.log(line)
        if self._view is None:
            return
        if not self._shown and self.elapsed() < self.after:  # quick work shows nothing
            return
        self._shown = True
        self._view.show(self, self.text(numbers), line)

    def advance(self, numbers: dict | None = None, line: str | None = None) -> None:
        """One more step finished."""
        self.update(self.done + 1, numbers, line)

    def close(self) -> None:
        if self._view is not None and self._shown:
            self._view.close(self)

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the figures -----------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def left(self) -> float | None:
        """Seconds left at the pace of the steps done in this meter's life (None before the first)."""
        counted = self.done - self._first
        if counted <= 0:
            return None
        return self.elapsed() / counted * (self.total - self.done)

    def text(self, numbers: dict | None = None) -> list[str]:
        """The parts of a progress line after the count: the numbers, elapsed time, time left."""
        parts = [f"{key} {_figure(value)}" for key, value in (numbers or {}).items() if value is not None]
        left = self.left()
        parts.append(f"{clock(self.elapsed())} elapsed")
        if left is not None and self.done < self.total:
            parts.append(f"~{clock(left)} left")
        return parts

    def count(self) -> str:
        return f"{self.what} {self.done}/{self.total}"


def _figure(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _view_for(out):
    if in_notebook() and out in (sys.stdout, sys.stderr):  # a cell's output (another stream stays plain)
        return _Notebook()
    if hasattr(out, "is_terminal"):  # a Rich console
        return _Bar(out) if out.is_terminal else _Lines(out.file)
    isatty = getattr(out, "isatty", lambda: False)
    return _Bar(None, out) if isatty() else _Lines(out)


class _Lines:
    """Plain lines: the first step, then at most one each ``every`` seconds, and the last."""

    def __init__(self, stream):
        self.stream = stream
        self._printed_at = None

    def show(self, meter: Meter, parts: list[str], line: str | None) -> None:
        if line:
            self._write(line)
        now = time.perf_counter()
        due = self._printed_at is None or now - self._printed_at >= meter.every or meter.done >= meter.total
        if due or line:
            self._printed_at = now
            self._write(" · ".join([meter.count(), *parts]))

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, meter: Meter) -> None:
        pass


class _Bar:
    """A Rich bar on a terminal; the figures are cut to the terminal's width (the monitored
    metric, last, and the clock stay longest)."""

    def __init__(self, console, stream=None):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = console if console is not None else Console(file=stream, highlight=False, markup=False)
        self.bar_width = 20 if self.console.width >= 100 else 10
        self.progress = Progress(TextColumn("{task.fields[count]}"), BarColumn(bar_width=self.bar_width),
                                 TextColumn("{task.fields[figures]}", markup=False), console=self.console,
                                 transient=False)
        self.task = None

    def show(self, meter: Meter, parts: list[str], line: str | None) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("", total=meter.total, completed=meter.done, count="", figures="")
        if line:
            self.progress.console.print(line, markup=False, highlight=False)
        count = meter.count()
        room = max(self.console.width - len(count) - self.bar_width - 4, 10)
        numbers = [part for part in parts if not part.endswith(("elapsed", "left"))]
        times = parts[len(numbers):]
        figures = "  ".join([*numbers, *times])
        while len(figures) > room and numbers:  # the first numbers (train loss) give way first; the clock stays
            numbers.pop(0)
            figures = "  ".join([*numbers, *times])
        self.progress.update(self.task, completed=meter.done, count=count, figures=figures[:room])

    def close(self, meter: Meter) -> None:
        if self.task is not None:
            self.progress.stop()


class _Notebook:
    """One line in a notebook's output that updates itself: an HTML progress element and text."""

    def __init__(self):
        self.handle = None

    def show(self, meter: Meter, parts: list[str], line: str | None) -> None:
        from IPython.display import HTML, display

        if line:
            print(line, flush=True)
        body = HTML(f"<progress value='{meter.done}' max='{meter.total}' style='width:12em'></progress> "
                    f"<code>{html.escape(meter.count())} · {html.escape(' · '.join(parts))}</code>")
        if self.handle is None:
            self.handle = display(body, display_id=True)
        else:
            self.handle.update(body)

    def close(self, meter: Meter) -> None:
        pass
