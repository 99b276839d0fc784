"""The event and webhook metrics (served with the others at /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_WRITTEN = Counter("crm_events_written_total", "Events written, by type", ["type"])
DELIVERIES = Counter(
    "crm_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (succeeded, retry, failed, gone)",
    ["outcome"],
)
DELIVERY_LATENCY = Histogram(
    "crm_webhook_delivery_seconds",
    "Time of one delivery attempt, request to answer",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OLDEST_PENDING = Gauge(
    "crm_webhook_oldest_pending_seconds",
    "Age of the oldest delivery still pending, as the last dispatcher round saw it",
)
