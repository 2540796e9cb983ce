"""Hook implementations of the sample plugin."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
from flask import Blueprint, g, render_template
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, fields, validate

from crm_sample.models import SampleItem, SampleReceipt
from crmcore import sdk
from crmcore.sdk import (
    DashboardWidget,
    Migration,
    NavItem,
    Permission,
    ScheduledJob,
    SignalReceiver,
    TaskHandler,
    add_columns,
    create_tables,
    hookimpl,
    payload_of,
    require,
)

# ---------------------------------------------------------------- API


class ItemSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    colour = fields.String(load_default=None, allow_none=True)


api = ApiBlueprint("sample_api", __name__, url_prefix="/sample", description="Sample items")


@api.route("/items")
class Items(MethodView):
    @api.response(200, ItemSchema(many=True))
    @require("records:read")
    def get(self):
        """List sample items"""
        return list(SampleItem.select().order_by(SampleItem.id))

    @api.arguments(ItemSchema)
    @api.response(201, ItemSchema)
    @require("sample:write")
    def post(self, data):
        """Create a sample item"""
        limit = sdk.settings(g.tenant, "sample")["max_items"]
        if SampleItem.select().count() >= limit:
            from flask_smorest import abort

            abort(409, message=f"at most {limit} items")
        with sdk.atomic():
            item = SampleItem.create(**data)
            sdk.send_signal("entity_created", g.tenant, entity="sample_item", record=item, actor=g.user or g.token)
        return item


# ---------------------------------------------------------------- pages

pages = Blueprint("sample_pages", __name__, url_prefix="/app/sample", template_folder="templates")


@pages.route("/")
def index():
    settings = sdk.settings(g.tenant, "sample")
    return render_template("sample/index.html", greeting=settings["greeting"], items=list(SampleItem.select().order_by(SampleItem.id)))


# ---------------------------------------------------------------- behaviour


def on_entity_created(tenant, entity, record, **_):
    SampleReceipt.create(kind="receiver", detail=f"{entity}:{record.id}")


def tick(tenant):
    SampleReceipt.create(kind="job", detail=tenant.slug)


def record_task(task):
    SampleReceipt.create(kind="task", detail=str(payload_of(task).get("detail", "")))


def slow_task(task):
    """Writes its receipt, then (first attempt only) says so and waits to be killed."""
    payload = payload_of(task)
    SampleReceipt.create(kind="slow", detail=str(task.id))
    if task.attempts == 1 and payload.get("started_file"):
        Path(payload["started_file"]).write_text(str(os.getpid()))
        time.sleep(60)


def failing_task(task):
    raise RuntimeError("this task always fails")


def after_commit_task(task):
    """Writes a receipt and, once its transaction commits, appends a line to ``commit_file``
    (an effect outside the database that must not happen for a rolled-back attempt)."""
    payload = payload_of(task)
    SampleReceipt.create(kind="after_commit", detail=str(task.id))

    def announce():
        with open(payload["commit_file"], "a") as fh:
            fh.write(f"{task.id}\n")

    sdk.on_commit(announce)


def tally_task(task):
    """Reads before it writes (as most real handlers do)."""
    seen = SampleReceipt.select().where(SampleReceipt.kind == "tally").count()
    SampleReceipt.create(kind="tally", detail=f"{payload_of(task).get('detail', '')}|{seen}")


def nap_task(task):
    """Says it started (``started_file``), naps ``seconds``, then writes its receipt."""
    payload = payload_of(task)
    if payload.get("started_file"):
        Path(payload["started_file"]).write_text(str(os.getpid()))
    time.sleep(float(payload.get("seconds", 1)))
    SampleReceipt.create(kind="nap", detail=str(task.id))


# ---------------------------------------------------------------- hooks


@hookimpl
def crm_models():
    return [SampleItem, SampleReceipt]


@hookimpl
def crm_migrations():
    return [
        Migration("0001_initial", create_tables(_v1_item(), SampleReceipt)),
        Migration("0002_item_colour", add_columns(SampleItem, "colour")),
    ]


def _v1_item():
    """SampleItem as released in version 1.0 (before the colour column): migration 0001
    must keep creating exactly that table, whatever the model looks like today."""
    import peewee

    from crmcore.sdk import TenantModel, utcnow

    class SampleItemV1(TenantModel):
        name = peewee.CharField(max_length=100)
        created_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            table_name = "sample_item"

    return SampleItemV1


@hookimpl
def crm_api_blueprints():
    return [api]


@hookimpl
def crm_web_blueprints():
    return [pages]


@hookimpl
def crm_nav_items(tenant, user):
    return [NavItem(label="Sample", endpoint="sample_pages.index", order=50)]


@hookimpl
def crm_dashboard_widgets(tenant, user):
    def render():
        return f"<p class='sample-widget'>{SampleItem.select().count()} sample items</p>"

    return [DashboardWidget(name="sample-count", title="Sample items", render=render, order=10)]


@hookimpl
def crm_template_context(tenant, user):
    return {"sample_greeting": sdk.settings(tenant, "sample")["greeting"]}


@hookimpl
def crm_signal_receivers():
    return [SignalReceiver("entity_created", on_entity_created)]


@hookimpl
def crm_scheduled_jobs():
    return [ScheduledJob("sample:tick", tick, trigger="interval", trigger_args={"seconds": 1})]


@hookimpl
def crm_task_handlers():
    return [
        TaskHandler("sample.record", record_task),
        TaskHandler("sample.slow", slow_task),
        TaskHandler("sample.fail", failing_task, max_attempts=2),
        # Added for tests/core/test_tasks.py:
        TaskHandler("sample.after_commit", after_commit_task),
        TaskHandler("sample.tally", tally_task),
        TaskHandler("sample.nap", nap_task),
        # the same work outside a transaction (at least once): the worker renews its lease
        TaskHandler("sample.nap_outside", nap_task, transactional=False),
    ]


@hookimpl
def crm_permissions():
    return [Permission("sample:write", roles=("admin", "manager"), description="Create sample items.")]


def _broken_rule(topic):
    raise RuntimeError("a bug in the rule")


@hookimpl
def crm_live_topic_rules():
    return [
        sdk.LiveTopicRule("sample:admins", lambda topic: sdk.current_context().role == "admin", "admins only"),
        sdk.LiveTopicRule("sample:broken", _broken_rule, "a rule that raises: refused"),
    ]


@hookimpl
def crm_cli_commands(cli):
    @cli.group()
    def sample():
        """Commands of the sample plugin."""

    @sample.command()
    @click.argument("name", default="world")
    def hello(name):
        """Say hello."""
        click.echo(f"hello {name} from the sample plugin")


@hookimpl
def crm_startup(app):
    app.jinja_env.filters["shout"] = lambda s: str(s).upper() + "!"


@hookimpl
def crm_demo_data(tenant):
    if not SampleItem.select().exists():
        SampleItem.create(name="Demo item")
