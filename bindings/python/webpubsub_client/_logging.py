"""Forwarding the native library's log lines to Python ``logging``.

``logging_enable=True`` on a client installs one process-wide log callback that sends the
library's lines to the logger ``webpubsub_client.native`` (access tokens are redacted by the
library). Without it the library logs to stderr only when ``AZURE_LOG_LEVEL`` or ``WPS_LOG`` is
set. The callback is removed at interpreter exit, before Python shuts down, so no library
thread calls into a finalising interpreter.
"""

import logging
import threading
import time
from typing import Optional

from . import _native as n

NATIVE_LOGGER = logging.getLogger("webpubsub_client.native")

_LEVELS = {
    n.WPS_LOG_ERROR: logging.ERROR,
    n.WPS_LOG_WARNING: logging.WARNING,
    n.WPS_LOG_INFO: logging.INFO,
    n.WPS_LOG_VERBOSE: logging.DEBUG,
}

_lock = threading.Lock()
_installed = False


# Calls of the log callback currently running Python code (see disable_native_logging).
_calls = threading.Condition(threading.Lock())
_running = 0

# After the callback is turned off, library threads may still be on their way into it (the
# library calls a log callback it looked up before the change). At interpreter exit they must
# be through before finalization starts (CPython ends any thread that takes the GIL after
# that point, which a native thread cannot survive), so the exit hook waits with the GIL
# released: for calls running Python code until they return, for calls about to enter it up
# to this grace period.
_EXIT_GRACE_S = 0.05
_EXIT_LIMIT_S = 2.0


def _on_log(_user_data: Optional[int], level: int, message: Optional[bytes]) -> None:
    global _running
    try:
        with _calls:
            _running += 1
        try:
            NATIVE_LOGGER.log(_LEVELS.get(level, logging.DEBUG), "%s", n.decode(message) or "")
        finally:
            with _calls:
                _running -= 1
                _calls.notify_all()
    except BaseException:  # noqa: BLE001 - nothing may unwind into C
        pass


_LOG_CB = n.LOG_FN(_on_log)


def enable_native_logging() -> None:
    """Route the library's log lines (all levels) to ``webpubsub_client.native``; idempotent."""
    global _installed
    with _lock:
        lib = n.get_lib()
        if _installed or lib.wps_set_log_callback is None:
            return
        if lib.wps_set_log_callback(_LOG_CB, None, n.WPS_LOG_VERBOSE) == n.WPS_OK:
            _installed = True


def disable_native_logging(at_exit: bool = False) -> None:
    """Remove the log callback installed by :func:`enable_native_logging`.

    ``at_exit``: also wait (GIL released, bounded) for calls already on their way into it.
    """
    global _installed
    with _lock:
        if not _installed:
            return
        n.get_lib().wps_set_log_callback(n.NO_LOG, None, n.WPS_LOG_OFF)
        _installed = False
    if at_exit:
        now = time.monotonic()
        grace_end, limit = now + _EXIT_GRACE_S, now + _EXIT_LIMIT_S
        with _calls:
            while now < limit and (_running > 0 or now < grace_end):
                _calls.wait((limit if _running > 0 else grace_end) - now)
                now = time.monotonic()
