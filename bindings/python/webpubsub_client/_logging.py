"""Forwarding the native library's log lines to Python ``logging``.

``logging_enable=True`` on a client installs one process-wide log callback that sends the
library's lines to the logger ``webpubsub_client.native`` (access tokens are redacted by the
library). Without it the library logs to stderr only when ``AZURE_LOG_LEVEL`` or ``WPS_LOG`` is
set. The callback is removed at interpreter exit, before Python shuts down, so no library
thread calls into a finalising interpreter.
"""

import logging
import threading
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


def _on_log(_user_data: Optional[int], level: int, message: Optional[bytes]) -> None:
    try:
        NATIVE_LOGGER.log(_LEVELS.get(level, logging.DEBUG), "%s", n.decode(message) or "")
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


def disable_native_logging() -> None:
    """Remove the log callback installed by :func:`enable_native_logging`."""
    global _installed
    with _lock:
        if not _installed:
            return
        n.get_lib().wps_set_log_callback(n.NO_LOG, None, n.WPS_LOG_OFF)
        _installed = False
