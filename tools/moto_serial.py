"""moto server that applies one request at a time.

moto's backends are not thread-safe: in its threaded server two DynamoDB
conditional writes racing for the same item can both pass their condition,
which real DynamoDB never allows. gild's exactly-once tests race real Lambda
processes against each other, so the emulator must keep DynamoDB's per-item
atomicity; serialising requests gives it (and more). Same flags as
`moto_server`.
"""

import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_call = DomainDispatcherApplication.__call__


def _serial_call(self, environ, start_response):
    with _lock:
        # moto builds whole responses, so the body is complete on return.
        return list(_call(self, environ, start_response))


DomainDispatcherApplication.__call__ = _serial_call

if __name__ == "__main__":
    server.main()
