"""The per-process token cache: a change made through this process is seen by the next request;
one made elsewhere (another process: here a statement on the database connection, which no
session of this process sees) is seen once the cache's lifetime has passed, on a clock the
test moves (no waiting)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from app.auth.cache import CachedToken, TokenCache
from app.models import ApiToken, Company
from tests.conftest import AppFor, RollbackDatabase, assert_problem
from tests.factories import Tenant


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _me(client: TestClient, token: str) -> Any:
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _client_with_cache(app: Any, cache: TokenCache) -> TestClient:
    app.state.token_cache = cache
    return TestClient(app, raise_server_exceptions=False)


def _remembering(
    app_for: AppFor, settings: Any, db: RollbackDatabase, tenant: Tenant
) -> tuple[TestClient, FakeClock, str]:
    """A client whose app remembers tokens for a second of ``clock``, and a token it has
    just used."""
    clock = FakeClock()
    client = _client_with_cache(app_for(settings, db), TokenCache(1.0, clock=clock))
    token = tenant.tokens["read"]
    assert _me(client, token).status_code == 200
    return client, clock, token


def test_a_token_revoked_through_this_process_is_refused_at_once(
    client: TestClient, tenant: Tenant
) -> None:
    admin, read = tenant.tokens["admin"], tenant.tokens["read"]
    me = _me(client, read)
    assert me.status_code == 200  # now remembered
    revoked = client.delete(
        f"/api/v1/tokens/{me.json()['token_id']}", headers={"Authorization": f"Bearer {admin}"}
    )
    assert revoked.status_code == 204
    assert_problem(_me(client, read), 401, "invalid_token")
    assert _me(client, admin).status_code == 200


def test_a_company_changed_through_this_process_is_seen_at_once(
    client: TestClient, tenant: Tenant
) -> None:
    admin = tenant.tokens["admin"]
    assert _me(client, admin).json()["company"]["name"] != "Renamed Foods ApS"
    changed = client.patch(
        "/api/v1/company",
        json={"name": "Renamed Foods ApS"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert changed.status_code == 200, changed.text
    assert _me(client, admin).json()["company"]["name"] == "Renamed Foods ApS"


def test_a_token_revoked_elsewhere_is_refused_once_the_cache_lifetime_has_passed(
    app_for: AppFor, settings: Any, db: RollbackDatabase, tenant: Tenant
) -> None:
    client, clock, token = _remembering(app_for, settings, db, tenant)
    # Another process revokes it: no session of this one takes part.
    db.connection.execute(delete(ApiToken).where(ApiToken.company_id == tenant.company.id))
    clock.now += 0.9
    assert _me(client, token).status_code == 200  # still remembered, within its second
    clock.now += 0.2
    assert_problem(_me(client, token), 401, "invalid_token")


def test_a_company_changed_elsewhere_is_seen_once_the_cache_lifetime_has_passed(
    app_for: AppFor, settings: Any, db: RollbackDatabase, tenant: Tenant
) -> None:
    client, clock, token = _remembering(app_for, settings, db, tenant)
    before = _me(client, token).json()["company"]["name"]
    db.connection.execute(
        update(Company).where(Company.id == tenant.company.id).values(name="Elsewhere ApS")
    )
    assert _me(client, token).json()["company"]["name"] == before
    clock.now += 1.01
    assert _me(client, token).json()["company"]["name"] == "Elsewhere ApS"


def test_without_the_cache_every_request_reads_its_token(
    app_for: AppFor, settings: Any, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client_with_cache(app_for(settings, db), TokenCache(0))
    token = tenant.tokens["read"]
    assert _me(client, token).status_code == 200
    db.connection.execute(delete(ApiToken).where(ApiToken.company_id == tenant.company.id))
    assert_problem(_me(client, token), 401, "invalid_token")


def test_a_lookup_begun_before_the_cache_was_emptied_is_not_remembered() -> None:
    cache = TokenCache(1.0, clock=FakeClock())
    entry = CachedToken(principal=object(), expires_at=None, last_used_at=None)
    generation = cache.generation  # a thread starts reading a token...
    cache.clear()  # ...and meanwhile a commit revokes it
    cache.put("hash", entry, generation)
    assert cache.get("hash") is None
    cache.put("hash", entry, cache.generation)
    assert cache.get("hash") is entry
