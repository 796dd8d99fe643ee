"""Prometheus metrics of the monitor: checks by outcome, their duration, open alerts by kind
and severity, and alert deliveries by channel and result. Kept in memory (``/metrics``
never reads the database); the open-alert gauge is refreshed by the monitor loop."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

# seconds: a check of a healthy domain takes ~10 round trips; timeouts reach check_timeout
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OUTCOMES = ("ok", "alerting", "error")  # no open problem / some condition / check failed


class MonitorMetrics:
    """Counters shared by the monitor's threads (one lock, cheap increments)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.checks: Counter[str] = Counter({o: 0 for o in OUTCOMES})
        self.bucket_counts = [0] * len(DURATION_BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.alerts_open: dict[tuple[str, str], int] = {}
        self.cpu_seconds = 0.0

    def check_done(self, outcome: str, seconds: float) -> None:
        with self._lock:
            self.checks[outcome] += 1
            self.duration_sum += seconds
            self.duration_count += 1
            for i, bound in enumerate(DURATION_BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[i] += 1

    def set_alerts_open(self, rows: Iterable[tuple[str, str, int]]) -> None:
        with self._lock:
            self.alerts_open = {(kind, severity): n for kind, severity, n in rows}

    def render(self, deliveries: Counter[tuple[str, str]]) -> list[str]:
        """The Prometheus text exposition lines."""
        with self._lock:
            lines = [
                "# HELP mtasts_checks_total Monitoring checks of hosted domains by outcome.",
                "# TYPE mtasts_checks_total counter",
                *(f'mtasts_checks_total{{outcome="{o}"}} {n}' for o, n in self.checks.items()),
                "# HELP mtasts_check_duration_seconds Wall time of one monitoring check.",
                "# TYPE mtasts_check_duration_seconds histogram",
                *(
                    f'mtasts_check_duration_seconds_bucket{{le="{b}"}} {n}'
                    for b, n in zip(DURATION_BUCKETS, self.bucket_counts, strict=True)
                ),
                f'mtasts_check_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}',
                f"mtasts_check_duration_seconds_sum {self.duration_sum:.6f}",
                f"mtasts_check_duration_seconds_count {self.duration_count}",
                "# HELP mtasts_alerts_open Open alerts by kind and severity.",
                "# TYPE mtasts_alerts_open gauge",
                *(
                    f'mtasts_alerts_open{{kind="{k}",severity="{s}"}} {n}'
                    for (k, s), n in sorted(self.alerts_open.items())
                ),
            ]
        lines += [
            "# HELP mtasts_alert_deliveries_total Alert events handed to a channel, by result.",
            "# TYPE mtasts_alert_deliveries_total counter",
            *(
                f'mtasts_alert_deliveries_total{{channel="{c}",result="{r}"}} {n}'
                for (c, r), n in sorted(deliveries.items())
            ),
        ]
        return lines
