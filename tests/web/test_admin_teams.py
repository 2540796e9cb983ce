"""/app/admin/teams and a user's team (core migration 0012_teams): admins add, rename and
delete teams and put users in them; names are unique per tenant, another tenant's team is
404, non-admins get 403, and every change is audited. Flask test client, real database."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from crmcore import db, sdk
from crmcore.entities.models import AuditEntry
from crmcore.models import Team, User


@pytest.fixture
def web(crm_env):
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    crm_env.create_app()
    return crm_env


@pytest.fixture
def admin(web):
    client = web.client("acme")
    client.user = web.login(client, "acme", "admin", email="boss@acme.test")
    return client


@contextmanager
def in_tenant(env, slug="acme"):
    with db.database.connection_context(), db.tenant_context(env.tenant(slug)):
        yield


def post(env, client, url, data=None):
    return client.post(url, data={**(data or {}), "csrf_token": env.csrf(client)})


def test_an_admin_adds_renames_and_deletes_a_team_and_sets_a_users_team(web, admin):
    assert b"No teams yet" in admin.get("/app/admin/teams/").data
    assert post(web, admin, "/app/admin/teams/", {"name": " North "}).status_code == 302
    with in_tenant(web):
        team = Team.get(Team.name == "North")
        rep = User.create(email="rep@acme.test", name="Rita Rep", role="agent")
    page = admin.get(f"/app/admin/users/{rep.id}").get_data(as_text=True)
    assert "(no team)" in page and ">North<" in page

    assert post(web, admin, f"/app/admin/users/{rep.id}/team", {"team_id": str(team.id)}).status_code == 302
    with in_tenant(web):
        assert User.get_by_id(rep.id).team_id == team.id
        assert sdk.team_options() == [(team.id, "North")]
    listing = admin.get("/app/admin/teams/").get_data(as_text=True)
    assert "Rita Rep" in listing

    assert post(web, admin, f"/app/admin/teams/{team.id}", {"name": "North-East"}).status_code == 302
    assert post(web, admin, f"/app/admin/teams/{team.id}/delete").status_code == 302
    with in_tenant(web):
        assert not Team.select().exists()
        assert User.get_by_id(rep.id).team_id is None  # the member stays, without a team
        actions = sorted((e.entity, e.action) for e in AuditEntry.select().where(AuditEntry.entity.in_(["team", "user"])))
    assert actions == [("team", "create"), ("team", "delete"), ("team", "update"), ("user", "update")]


def test_bad_team_input_is_refused_with_the_reason(web, admin):
    empty = post(web, admin, "/app/admin/teams/", {"name": "  "})
    assert empty.status_code == 422 and b"Enter the team&#39;s name." in empty.data
    post(web, admin, "/app/admin/teams/", {"name": "North"})
    duplicate = post(web, admin, "/app/admin/teams/", {"name": "north"})
    assert duplicate.status_code == 409 and b"already exists" in duplicate.data
    with in_tenant(web, "other"):
        foreign = Team.create(name="Theirs")
    with in_tenant(web):
        rep = User.create(email="rep@acme.test", role="agent")
    # another tenant's team: not a choice here (422), and its pages are 404
    assert post(web, admin, f"/app/admin/users/{rep.id}/team", {"team_id": str(foreign.id)}).status_code == 422
    assert post(web, admin, f"/app/admin/users/{rep.id}/team", {"team_id": "x"}).status_code == 422
    assert post(web, admin, f"/app/admin/teams/{foreign.id}", {"name": "Mine"}).status_code == 404
    assert post(web, admin, f"/app/admin/teams/{foreign.id}/delete").status_code == 404
    with in_tenant(web, "other"):
        assert Team.get_by_id(foreign.id).name == "Theirs"


def test_only_admins_open_the_teams_page(web):
    manager = web.client("acme")
    web.login(manager, "acme", "manager", email="m@acme.test")
    assert manager.get("/app/admin/teams/").status_code == 403
    assert post(web, manager, "/app/admin/teams/", {"name": "North"}).status_code == 403


def test_migrations_add_teams_to_a_database_that_predates_them(crm_env):
    """A database migrated before teams existed: core 0012_teams adds crm_teams and
    crm_users.team_id, analytics 0004_teams its two columns; users keep their rows."""
    from playhouse.migrate import migrate as run_operations

    from crm_plugins.analytics.models import Goal, SavedReport
    from crmcore.migrations import migrate, migrator
    from crmcore.models import MigrationRecord

    crm_env.write_tenant("acme", plugins=["analytics"])
    app = crm_env.create_app()
    with app.app_context(), db.database.connection_context():
        with db.tenant_context(crm_env.tenant("acme")):
            User.create(email="old@acme.test", role="agent")
        m = migrator(db.database)
        dropped = (("analytics_goal", "team_id"), ("analytics_saved_report", "team_filter"), ("crm_users", "team_id"))
        if db.is_postgres():
            for table, column in dropped:
                db.database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}" CASCADE')
        else:  # SQLite: the table copied without the column (it is a foreign key)
            run_operations(*(m.drop_column(table, column, legacy=True) for table, column in dropped))
        db.database.drop_tables([Team])
        MigrationRecord.delete().where(MigrationRecord.name.in_(["0012_teams", "0004_teams"])).execute()
        assert "team_id" not in {c.name for c in db.database.get_columns("crm_users")}

        applied = migrate(app.extensions["crm"].host)
        assert any("0012_teams" in line for line in applied) and any("0004_teams" in line for line in applied)
        assert "team_id" in {c.name for c in db.database.get_columns("crm_users")}
        assert "team_id" in {c.name for c in db.database.get_columns(Goal._meta.table_name)}
        assert "team_filter" in {c.name for c in db.database.get_columns(SavedReport._meta.table_name)}
        with db.tenant_context(crm_env.tenant("acme")):
            team = Team.create(name="North")
            old = User.get(User.email == "old@acme.test")
            assert old.team_id is None
            User.update(team=team).where(User.id == old.id).execute()
            assert User.get_by_id(old.id).team_id == team.id
