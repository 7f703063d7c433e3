"""Third-party noise kept off the terminal: library warnings, log lines and progress bars.

transformers, datasets, TRL, accelerate and peft warn about deprecations, log advice and draw "Map: ..."
bars that tell a referee user nothing and bury referee's own progress and results. The command line
quiets them for the whole command (``--verbose`` leaves them alone); inside a run they are written to
RUN/third_party.log, so nothing is lost. Python code that uses referee directly is left untouched
unless it asks for quieting with ``quiet_third_party``.

Warnings are told apart by the module that issued them: referee's own still reach the terminal.
"""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

LOG_NAME = "third_party.log"
# The loggers the libraries write to, and the one Python's warnings are sent to here.
LOGGERS = ("py.warnings", "transformers", "datasets", "trl", "accelerate", "peft", "huggingface_hub")
_WARNINGS_LOGGER = "py.warnings"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_active: "_Quieting | None" = None


class _Quieting:
    """What one quieting changed, so that leaving it puts everything back."""

    def __init__(self, log_path: Path | None):
        self.handler = _handler_for(log_path)
        self.saved_loggers: dict[str, tuple] = {}
        self.saved_bars: dict[str, tuple] = {}
        self.saved_showwarning = warnings.showwarning

    def start(self) -> None:
        warnings.showwarning = self._show_warning
        self.apply()

    def apply(self) -> None:
        """Point every library logger at the log file, and switch off the libraries' progress bars.
        Safe to repeat: transformers and datasets add a terminal handler when first imported, and
        what they set up then is what leaving the quieting restores."""
        for name in LOGGERS:
            logger = logging.getLogger(name)
            for h in self._remember(logger):
                logger.removeHandler(h)
            logger.addHandler(self.handler)
            logger.setLevel(logging.WARNING)
            logger.propagate = False
        for library, (is_on, turn_on, turn_off) in _progress_bars().items():
            self.saved_bars.setdefault(library, (is_on(), turn_on))
            turn_off()

    def _remember(self, logger: logging.Logger) -> list[logging.Handler]:
        """Save how a logger is set up, the first time and whenever its library has set it up again
        (a handler that is not ours appeared); return the handlers that are not ours."""
        theirs = [h for h in logger.handlers if h is not self.handler]
        if theirs or logger.name not in self.saved_loggers:
            self.saved_loggers[logger.name] = (logger.level, theirs, logger.propagate)
        return theirs

    def retarget(self, log_path: Path | None) -> None:
        new = _handler_for(log_path)
        for name in self.saved_loggers:
            logger = logging.getLogger(name)
            logger.removeHandler(self.handler)
            logger.addHandler(new)
        self.handler.close()
        self.handler = new

    def stop(self) -> None:
        warnings.showwarning = self.saved_showwarning
        for name in LOGGERS:
            self._remember(logging.getLogger(name))
        for name, (level, handlers, propagate) in self.saved_loggers.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self.handler)
            for h in handlers:
                logger.addHandler(h)
            logger.setLevel(level)
            logger.propagate = propagate
        for was_on, turn_on in self.saved_bars.values():
            if was_on:
                turn_on()
        self.handler.close()

    def _show_warning(self, message, category, filename, lineno, file=None, line=None):
        if _is_referee(_issuer()):
            self.saved_showwarning(message, category, filename, lineno, file, line)
        else:
            text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
            logging.getLogger(_WARNINGS_LOGGER).warning(text)


@contextmanager
def quiet_third_party(log_path: Path | None = None):
    """Keep third-party warnings, logs and progress bars off the terminal until the block ends,
    writing them to ``log_path`` (nowhere when None, until ``route_to`` names a run folder)."""
    global _active
    outer, _active = _active, _Quieting(log_path)
    _active.start()
    try:
        yield
    finally:
        _active.stop()
        _active = outer


def route_to(run_folder: Path) -> None:
    """While quieting, send third-party noise to RUN/third_party.log; otherwise do nothing."""
    if _active is not None:
        _active.retarget(Path(run_folder) / LOG_NAME)
        _active.apply()


def reapply() -> None:
    """Quiet the libraries imported since quieting began (transformers and datasets add their own
    terminal handler when first imported). Call it before work that makes them talk."""
    if _active is not None:
        _active.apply()


def active() -> bool:
    """True while third-party noise is kept off the terminal."""
    return _active is not None


def _handler_for(log_path: Path | None) -> logging.Handler:
    if log_path is None:
        return logging.NullHandler()
    handler = logging.FileHandler(log_path, encoding="utf-8", delay=True)  # no file until something is said
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler


def _issuer() -> str:
    """The name of the module that called ``warnings.warn`` (the first frame outside this module and
    the warnings machinery)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "warnings"):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


def _is_referee(module: str) -> bool:
    return module == "referee" or module.startswith("referee.")


def _progress_bars() -> dict:
    """(is on, turn on, turn off) for the progress bars of the libraries imported so far: datasets'
    ("Map: ...", TRL's "Tokenizing ...") and transformers' (loading weights)."""
    bars = {}
    if "datasets" in sys.modules:
        from datasets import utils as ds

        bars["datasets"] = (ds.is_progress_bar_enabled, ds.enable_progress_bars, ds.disable_progress_bars)
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf

        bars["transformers"] = (hf.is_progress_bar_enabled, hf.enable_progress_bar, hf.disable_progress_bar)
    return bars
