import peewee
from flask import Blueprint, g, render_template_string
from flask_smorest import Blueprint as ApiBlueprint

from crmcore import sdk
from crmcore.sdk import Migration, NavItem, ScheduledJob, SignalReceiver, TaskHandler, hookimpl


class Greeting(sdk.TenantModel):  # a tenant's rows: every query is scoped to the current tenant
    lead_id = peewee.IntegerField(index=True)
    text = peewee.CharField(max_length=200)

    class Meta:
        table_name = "greeter_greeting"


api = ApiBlueprint("greeter_api", __name__, url_prefix="/greeter")
pages = Blueprint("greeter", __name__, url_prefix="/app/greeter")
PAGE = '{% extends "crm/base.html" %}{% block content %}<h1>{{ greeting }}</h1><p>{{ n }} leads greeted</p>{% endblock %}'


@api.route("/greetings")
@api.response(200, sdk.model_schema(Greeting, many=True))
@sdk.require("records:read")
def greetings():
    """The tenant's greetings, newest first."""
    return Greeting.select().order_by(Greeting.id.desc())


@pages.route("/")
def index():
    return render_template_string(PAGE, greeting=sdk.settings(g.tenant, "greeter")["greeting"], n=Greeting.select().count())


def on_lead_created(tenant, record, **_):  # receivers must be quick: the work is a task
    sdk.enqueue("greeter.greet", {"lead_id": record.id, "name": record.name}, idempotency_key=f"greeter:{tenant.id}:{record.id}")


def greet(task):
    lead, greeting = sdk.payload_of(task), sdk.settings(sdk.current_tenant(), "greeter")["greeting"]
    Greeting.create(lead_id=lead["lead_id"], text=f"{greeting}, {lead['name']}!")


def forget_deleted_leads(tenant):
    Greeting.delete().where(Greeting.lead_id.not_in(sdk.Lead.select(sdk.Lead.id))).execute()


@hookimpl
def crm_models(): return [Greeting]
@hookimpl
def crm_migrations(): return [Migration("0001_greetings", sdk.create_tables(Greeting))]
@hookimpl
def crm_api_blueprints(): return [api]
@hookimpl
def crm_web_blueprints(): return [pages]
@hookimpl
def crm_nav_items(tenant, user): return [NavItem(label="Greeter", endpoint="greeter.index", order=50)]
@hookimpl
def crm_signal_receivers(): return [SignalReceiver("lead_created", on_lead_created)]
@hookimpl
def crm_task_handlers(): return [TaskHandler("greeter.greet", greet)]
@hookimpl
def crm_scheduled_jobs(): return [ScheduledJob("greeter:forget_deleted", forget_deleted_leads, "cron", {"hour": 3})]
