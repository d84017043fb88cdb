"""The access log: one JSON line per request, written off the request path.

Formatting a log record and writing it to a stream costs more than many requests do, so
requests only append their line to a queue; a background thread writes whatever has
gathered every fraction of a second, as one `casetrail.access` record whose message holds
one line per request. What a line holds is decided in `api.app.RequestLog`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import orjson


class AccessLog:
    def __init__(self, logger: logging.Logger | None = None, interval: float = 0.2) -> None:
        self.logger = logger or logging.getLogger("casetrail.access")
        self.interval = interval
        self._lines: deque[bytes] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, entry: dict[str, Any]) -> None:
        self._lines.append(orjson.dumps(entry))

    def flush(self) -> None:
        lines = []
        while self._lines:
            lines.append(self._lines.popleft())
        if lines and self.logger.isEnabledFor(logging.INFO):
            self.logger.info(b"\n".join(lines).decode())

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="casetrail-access-log", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
