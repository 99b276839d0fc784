"""Settings: environment variables prefixed ``CRM_`` and an optional ``.env`` file."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.outbound import OutboundPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./crm.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    database_replica_url: str | None = Field(
        default=None,
        description="A streaming replica of the PostgreSQL database: the overview, its "
        "exports, the summary and the partner and sales order lists read from it; when it "
        "does not answer they read from the primary (and /readyz says degraded)",
    )
    secret_key: str = Field(default="", description="Encrypts stored accounting credentials")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = Field(default=True, description="JSON log lines (false: console lines)")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body")
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="PostgreSQL statement timeout (0: none)"
    )
    db_lock_timeout_ms: int = Field(
        default=5_000,
        ge=0,
        description="PostgreSQL: longest wait for a lock (a row or table behind a bulk "
        "change, or an order's turn at its partner); past it the request answers 503 "
        "lock_timeout (0: no limit)",
    )
    db_pgbouncer: bool = Field(
        default=False,
        description="PostgreSQL is reached through PgBouncer in transaction pooling: no "
        "server-side prepared statements, no startup options; the statement and lock timeouts "
        "are set in each write transaction (SET LOCAL), and read statements, which run "
        "without a transaction, take the role's own statement_timeout",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        description="SQLite: longest wait for the database write lock; SQLite's counterpart "
        "of db_lock_timeout_ms (past it: 503 lock_timeout)",
    )
    bulk_max_partners: int = Field(
        default=100_000,
        ge=1,
        description="Most partners one bulk change may select; more: 422 too_many_partners",
    )
    import_max_rows: int = Field(
        default=50_000,
        ge=1,
        description="Most data rows one partner import may hold; more: 422 too_many_rows",
    )
    import_max_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1024,
        description="Largest partner import file (the one route whose body may exceed "
        "max_body_bytes); larger: 413",
    )
    accounting_sync_interval: int = Field(
        default=0, ge=0, description="Seconds between scheduled balance refreshes (0: off)"
    )
    accounting_connect_timeout: float = Field(default=5.0, gt=0)
    accounting_read_timeout: float = Field(default=30.0, gt=0)
    accounting_request_timeout: float = Field(
        default=120.0, gt=0, description="Longest time for one whole answer of the provider"
    )
    accounting_retry_attempts: int = Field(default=5, ge=1, le=20)
    accounting_retry_max_wait: float = Field(
        default=20.0, ge=0, description="Longest pause between two attempts, in seconds"
    )
    accounting_run_timeout: float = Field(
        default=900.0, gt=0, description="A refresh that takes longer fails"
    )
    accounting_heartbeat_timeout: float = Field(
        default=120.0, gt=0, description="A running refresh silent this long is marked failed"
    )
    outbound_allow_http: bool = Field(
        default=False,
        description="Let tenant-supplied URLs (accounting, webhooks) use plain http://",
    )
    outbound_allow_private: bool = Field(
        default=False,
        description="Let tenant-supplied URLs reach loopback, private and link-local addresses",
    )
    outbound_max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest answer read from an outbound call"
    )
    auth_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="How long a process remembers a token it checked (0: every request reads "
        "its token); a token revoked, or a company or user changed, through another process "
        "takes effect within this",
    )
    rate_limit: str = Field(
        default="1200/minute",
        description="Requests per token, e.g. 600/minute or 50/second (0: no limit)",
    )
    rate_limit_company: str = Field(
        default="6000/minute",
        description="Requests per company over all its tokens (0: no limit)",
    )
    rate_limit_auth_failures: str = Field(
        default="30/minute",
        description="Failed authentications per client address before 429 (0: no limit)",
    )
    max_tokens_per_company: int = Field(
        default=100, ge=1, description="Most active (unexpired) API tokens a company may hold"
    )
    redis_url: str | None = Field(
        default=None, description="redis://host:6379/0 shares rate limits across processes"
    )
    redis_key_prefix: str = Field(
        default="crm", min_length=1, description="Prefix of this deployment's keys in Redis"
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed to call from a browser"
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated Host names served (*.example.com: its subdomains); "
        "any other Host answers 400 invalid_host (empty: any Host)",
    )
    event_retention_days: int = Field(
        default=30, ge=1, description="Days events stay in the feed; an older cursor: 410"
    )
    event_max_wait: int = Field(
        default=30,
        ge=0,
        le=30,
        description="Longest long poll the server holds, whatever `wait` asks (an empty page "
        "sooner is within the contract: the consumer loops on next_cursor)",
    )
    event_poll_interval: float = Field(
        default=0.5, gt=0, le=5, description="Seconds between looks for new events in a long poll"
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a receiver has to answer one delivery"
    )
    webhook_retry_schedule: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        description="Comma-separated seconds between the attempts of one delivery: an event "
        "gets 1 + that many attempts",
    )
    webhook_disable_after: int = Field(
        default=5,
        ge=1,
        description="Events in a row that exhausted their retries before an endpoint is disabled",
    )
    dispatch_inline: bool = Field(
        default=True,
        description="crm serve delivers webhooks and runs the scheduled jobs itself (false: "
        "leave them to crm worker processes)",
    )
    dispatch_interval: float = Field(
        default=1.0, gt=0, description="Seconds between two looks for due deliveries and jobs"
    )
    dispatch_concurrency: int = Field(
        default=8, ge=1, le=256, description="Deliveries one dispatcher sends at the same time"
    )
    bench_routes: bool = Field(
        default=False, description="Serve /bench/floor (benchmarks only: 50 prepared rows)"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:// and postgresql+psycopg:// URLs are supported")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("rate_limit", "rate_limit_company", "rate_limit_auth_failures")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        if value.strip() not in ("", "0"):
            parse(value)  # raises ValueError on a bad rate
        return value.strip()

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        waits = [w.strip() for w in value.split(",") if w.strip()]
        if any(float(w) < 0 for w in waits):  # float() raises ValueError on a bad number
            raise ValueError("waits are seconds, 0 or more")
        return ",".join(waits)

    @property
    def webhook_retry_waits(self) -> list[float]:
        return [float(w) for w in self.webhook_retry_schedule.split(",") if w]

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def allowed_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy(
            allow_http=self.outbound_allow_http,
            allow_private=self.outbound_allow_private,
            max_bytes=self.outbound_max_bytes,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
