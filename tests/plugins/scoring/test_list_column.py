"""The "Score" column of the core lead list (crm_list_columns): shown with the grade,
sortable by score with keyset pages, filterable by grade, a constant number of queries
per page, and absent for a tenant without the plugin."""

from __future__ import annotations

import re
from html import unescape

from .conftest import QueryCounter, days_ago, in_tenant, make_lead


def page_rows(html: str) -> list[tuple[int, str]]:
    """(lead id, score cell text) in the list's order; unscored cells say so."""
    rows = []
    for body in re.findall(r"<tr>(.*?)</tr>", html, flags=re.DOTALL):
        lead = re.search(r'<td class="primary-cell"><a href="/app/leads/(\d+)">', body)
        if not lead:
            continue
        cell = re.search(r'<td data-column="scoring:score">(.*?)</td>', body, flags=re.DOTALL)
        score = re.search(r'data-score="([^"]+)" data-grade="(\w)"', cell.group(1)) if cell else None
        rows.append((int(lead.group(1)), f"{score.group(1)} {score.group(2)}" if score else ("unscored" if cell else "no cell")))
    return rows


def next_link(html: str) -> str | None:
    match = re.search(r'<a class="button" href="\?([^"]*)" rel="next">', html)
    return "/app/leads/?" + unescape(match.group(1)) if match else None


def seed(env, extra: int = 0):
    from crm_plugins.scoring import engine

    with in_tenant(env) as tenant:
        hot = make_lead(name="Hot", status="qualified", estimated_value=60000, last_contact_at=days_ago(1))  # 55 C
        warm = make_lead(name="Warm", status="contacted", estimated_value=30000)  # 25 D
        cold = make_lead(name="Cold", status="new")  # 10 D
        more = [make_lead(name=f"Extra {i}", status="qualified", estimated_value=1000 * i) for i in range(extra)]
        engine.rescore(tenant)
        unscored = make_lead(name="Fresh")  # created after the rescore (debounced task not run)
        from crm_plugins.scoring.models import LeadScore

        LeadScore.delete().where(LeadScore.lead == unscored.id).execute()
    return hot, warm, cold, unscored, more


def test_lead_list_shows_score_sorts_and_filters(env):
    hot, warm, cold, unscored, _ = seed(env)
    client = env.client("acme")
    env.login(client, role="agent")
    html = client.get("/app/leads/").get_data(as_text=True)
    assert '<th scope="col" data-column="scoring:score">' in html and "scoring.css" in html
    rows = dict(page_rows(html))
    assert rows == {hot.id: "55 C", warm.id: "25 D", cold.id: "10 D", unscored.id: "unscored"}
    assert 'class="grade grade-C"' in html

    best_first = client.get("/app/leads/?sort=-scoring:score").get_data(as_text=True)
    assert [i for i, _ in page_rows(best_first)] == [hot.id, warm.id, cold.id, unscored.id]
    assert 'aria-sort="descending"' in best_first and "were not understood" not in best_first
    worst_first = client.get("/app/leads/?sort=scoring:score").get_data(as_text=True)
    assert [i for i, _ in page_rows(worst_first)] == [unscored.id, cold.id, warm.id, hot.id]

    # Filter by grade, combined with the core's own filters and the score sort.
    only_d = client.get("/app/leads/?scoring:score=D&sort=-scoring:score").get_data(as_text=True)
    assert [i for i, _ in page_rows(only_d)] == [warm.id, cold.id]
    assert "Clear filters" in only_d
    contacted_d = client.get("/app/leads/?scoring:score=D&status=contacted").get_data(as_text=True)
    assert [i for i, _ in page_rows(contacted_d)] == [warm.id]
    none_a = client.get("/app/leads/?scoring:score=A").get_data(as_text=True)
    assert page_rows(none_a) == [] and "No leads match" in none_a
    # A grade that does not exist is reported and left out, never a 500.
    bad = client.get("/app/leads/?scoring:score=Z")
    assert bad.status_code == 200 and "Must be one of: A, B, C, D." in bad.get_data(as_text=True)
    assert len(page_rows(bad.get_data(as_text=True))) == 4
    mangled = client.get("/app/leads/?sort=-scoring:score&cursor=bm90LWpzb24")
    assert mangled.status_code == 200 and "Not a valid cursor." in mangled.get_data(as_text=True)


def test_score_sort_pages_with_keyset_and_constant_queries(env):
    *_, unscored, _ = seed(env, extra=7)  # 11 leads; ties of equal scores too
    client = env.client("acme")
    env.login(client, role="admin")
    from crm_plugins.scoring.models import LeadScore

    with in_tenant(env):
        expected = sorted(((s.score, s.lead_id) for s in LeadScore.select()), reverse=True)
    expected_ids = [lead for _, lead in expected] + [unscored.id]

    counts, seen = [], []
    url = "/app/leads/?sort=-scoring:score&limit=3"
    while url:
        with QueryCounter().counting() as counter:
            html = client.get(url).get_data(as_text=True)
        counts.append(len(counter.statements))
        seen += [i for i, _ in page_rows(html)]
        url = next_link(html)
    assert seen == expected_ids  # every lead once, in score order (ties by id), across 4 pages
    assert len(counts) == 4 and len(set(counts[:3])) == 1 and counts[3] <= counts[0]

    # One query for the score cells of a page whatever its size.
    def cell_queries(limit: int) -> int:
        with QueryCounter().counting() as counter:
            client.get(f"/app/leads/?limit={limit}")
        return sum("scoring_lead_score" in s for s in counter.statements)

    assert cell_queries(2) == cell_queries(11) == 1


def test_no_score_column_without_the_plugin(env):
    with in_tenant(env, "beta"):
        make_lead(name="Beta lead")
    client = env.client("beta")
    env.login(client, "beta", role="admin")
    html = client.get("/app/leads/").get_data(as_text=True)
    assert "scoring:score" not in html and "scoring.css" not in html and "Beta lead" in html
    # Its sort key is refused like any unknown sort (the default order, a notice), its filter ignored.
    sorted_page = client.get("/app/leads/?sort=-scoring:score&scoring:score=A")
    assert sorted_page.status_code == 200
    body = sorted_page.get_data(as_text=True)
    assert "were not understood" in body and "<code>sort</code>" in body and "Beta lead" in body
