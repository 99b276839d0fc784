from tests.conftest import Api, assert_problem


def test_partner_round_trip(api: Api) -> None:
    r = api.post("/api/v1/partners", json={"name": "Nordic Deli", "country": "DK"})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/api/v1/partners/1"
    r = api.get("/api/v1/partners/1")
    assert r.json()["name"] == "Nordic Deli"


def test_unknown_route_is_problem(api: Api) -> None:
    assert_problem(api.get("/api/v1/nothing"), 404, "not_found")
