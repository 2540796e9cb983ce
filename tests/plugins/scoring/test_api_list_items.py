"""The scored-leads list names each lead and dates each score with its offset (issue 21:
every item had ``lead_id: null``, and times had no offset)."""

from __future__ import annotations

import datetime as dt

from .test_api_pages import auth, seeded


def test_list_items_name_their_leads_and_carry_utc_offsets(env):
    hot, warm, cold = seeded(env)
    answer = env.client("acme").get("/api/v1/scoring/leads", query_string={"sort": "-score"}, headers=auth(env, "viewer"))
    assert answer.status_code == 200, answer.json
    items = answer.json["items"]
    assert {i["lead_id"] for i in items} == {hot.id, warm.id, cold.id}
    assert {i["lead_id"]: i["name"] for i in items} == {hot.id: "Hot", warm.id: "Warm", cold.id: "Cold"}
    for item in items:
        assert dt.datetime.fromisoformat(item["computed_at"]).utcoffset() == dt.timedelta(0)
