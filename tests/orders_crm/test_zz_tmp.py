from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.conftest import Api
from tests.factories import make_tenant
from tests.orders_crm.test_properties import Driver, operations
from tests.orders_crm.helpers import OVERVIEW_SORTS

@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(ops=operations, sort=st.sampled_from([s for s in OVERVIEW_SORTS if "exceeded" not in s]))
def test_tmp(client, session, ops, sort):
    tenant = make_tenant(session)
    driver = Driver(Api(client, tenant), session)
    driver.check(sort)
    for op in ops:
        try:
            driver.apply(op)
        except AssertionError:
            print("FAILOPS", ops, sort)
            raise
        driver.check(sort)
    event(f"partners={min(len(driver.ref.partners),6)}")
    event(f"orders={min(len(driver.ref.orders),6)}")
