"""The one change made to the official sync Python client for the benchmark: its lost wake-up.

``azure-messaging-webpubsubclient`` 1.1.0 hands a frame to its socket thread and only then
waits on a ``threading.Condition`` that the socket thread notifies when the ack (or ``connected``)
arrives. On loopback the notification often comes before the wait starts and is lost, and the
caller then sleeps for its whole ack timeout (30 s), so an acked send loop would measure the
timeout, not the client. The client's modules get a Condition that remembers a notification
made while nobody waited (the same workaround as tests/interop's harness). Nothing on the wire
changes.
"""

import threading
import types


class RememberingCondition(threading.Condition):
    def __init__(self, lock=None):
        super().__init__(lock)
        self._missed = 0

    def notify(self, n=1):
        if not self._waiters:
            self._missed += n
        super().notify(n)

    def notify_all(self):
        if not self._waiters:
            self._missed += 1
        super().notify_all()

    def wait(self, timeout=None):
        if self._missed:
            self._missed -= 1
            return True
        return super().wait(timeout)


def apply():
    from azure.messaging.webpubsubclient import _client
    from azure.messaging.webpubsubclient.models import _models

    patched = types.ModuleType("threading_remembering_condition")
    patched.__dict__.update(threading.__dict__)
    patched.Condition = RememberingCondition
    _client.threading = patched
    _models.threading = patched
