"""Fixed vocabularies stored as strings (with CHECK constraints) and exposed as enums."""

from enum import StrEnum


class CustomerStage(StrEnum):
    lead = "lead"
    potential = "potential"
    active = "active"
    inactive = "inactive"
    lost = "lost"


STAGE_ORDER: tuple[CustomerStage, ...] = tuple(CustomerStage)


class SalesOrderStatus(StrEnum):
    open = "open"
    delivered = "delivered"
    invoiced = "invoiced"
    cancelled = "cancelled"


# Orders that count as not yet invoiced: their base totals make up the uninvoiced total.
UNINVOICED_STATUSES = (SalesOrderStatus.open.value, SalesOrderStatus.delivered.value)


class StageChangeReason(StrEnum):
    manual = "manual"
    bulk = "bulk"
    sales_order_created = "sales_order_created"
    import_ = "import"
    dormant = "dormant"


class SyncRunStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class SyncTrigger(StrEnum):
    api = "api"
    cli = "cli"
    schedule = "schedule"


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"

    @property
    def rank(self) -> int:
        return ("read", "write", "admin").index(self.value)

    def allows(self, needed: "Scope") -> bool:
        return self.rank >= needed.rank


class CreditCheck(StrEnum):
    balance = "balance"
    balance_plus_uninvoiced = "balance_plus_uninvoiced"


class CreditEnforcement(StrEnum):
    warn = "warn"
    block = "block"


def check_in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"
