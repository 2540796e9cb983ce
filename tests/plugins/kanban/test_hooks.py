"""The hook the kanban plugin declares: crm_kanban_card_badges."""

from __future__ import annotations

from crm_plugins.kanban.contrib import CardBadge
from crmcore import hookimpl


def test_hook_crm_kanban_card_badges(admin, pipeline, register_plugin, caplog):
    first = admin("POST", "/deals", json={"title": "Scored", "value": "100.00"})
    second = admin("POST", "/deals", json={"title": "Unscored"})
    lead = admin("POST", "/leads", json={"name": "Grace Hopper"})
    calls: list[tuple[str, list[int]]] = []

    class Scores:
        @hookimpl
        def crm_kanban_card_badges(self, tenant, entity, record_ids):
            calls.append((entity, sorted(record_ids)))
            wanted = first["id"] if entity == "deal" else lead["id"]
            return [
                CardBadge(wanted, "82 · A", title="Lead score 82 (grade A)", tone="good", order=20),
                CardBadge(wanted, "hot", order=10, tone="nonsense"),
                CardBadge(999999, "not on this page"),
            ]

    class Broken:
        @hookimpl
        def crm_kanban_card_badges(self, tenant, entity, record_ids):
            raise RuntimeError("scoring service down")

    register_plugin(Scores(), name="scores")
    register_plugin(Broken(), name="broken")
    board = admin("GET", f"/pipeline/boards/{pipeline['id']}")
    cards = {c["id"]: c for column in board["columns"] for c in column["cards"]}
    # Sorted by order; an unknown tone falls back to neutral; other ids are ignored.
    assert [(b["label"], b["tone"]) for b in cards[first["id"]]["badges"]] == [("hot", "neutral"), ("82 · A", "good")]
    assert cards[first["id"]]["badges"][1]["title"] == "Lead score 82 (grade A)"
    assert cards[second["id"]]["badges"] == []
    # Once for the whole board (never per card), despite the broken plugin.
    assert calls == [("deal", sorted(cards))]
    assert "broken" in caplog.text
    assert admin("GET", f"/pipeline/cards/{first['id']}")["badges"][0]["label"] == "hot"
    lead_board = admin("GET", "/pipeline/leads/board")
    assert lead_board["columns"][0]["cards"][0]["badges"][1]["label"] == "82 · A"
    assert calls[-1] == ("lead", [lead["id"]])


def test_badges_of_a_plugin_the_tenant_does_not_have_are_not_asked(admin, pipeline, register_plugin):
    admin("POST", "/deals", json={"title": "Scored"})
    asked = []

    class OffForAcme:
        @hookimpl
        def crm_kanban_card_badges(self, tenant, entity, record_ids):
            asked.append(entity)
            return [CardBadge(record_ids[0], "x")]

    register_plugin(OffForAcme(), name="offforacme", always_on=False)
    board = admin("GET", f"/pipeline/boards/{pipeline['id']}")
    assert asked == [] and all(c["badges"] == [] for column in board["columns"] for c in column["cards"])
