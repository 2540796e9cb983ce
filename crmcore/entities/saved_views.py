"""Saved views: a named set of filters and a sort for one list (leads, contacts,
companies, deals), personal or shared with the whole tenant.

A view stores its filters as the list page's query string does, ``{key: [values]}``
(``{"status": ["new", "contacted"], "sort": ["-created_at"], "custom.region": ["north"]}``),
so opening a view is a link to the list with that query, and the list reads it with the
API's own query-args schema: a view filters exactly as the URL and the API do. Which keys
and values are valid is the API layer's to say (:func:`crmcore.api.saved_views.clean_query`);
this module keeps the rules of ownership:

- everyone sees their own views and the shared ones of their tenant, never another
  person's personal view (it is "not found", as another tenant's record is);
- a view's owner changes and deletes it; a shared view may also be changed or deleted by
  whoever holds ``views:manage`` (admins and managers tidy the shared list);
- a name is unique per person and list (409 points at the view in the way);
- a program's token bound to no person saves tenant-wide views: they have no owner, are
  always shared, and only ``views:manage`` changes them.
"""

from __future__ import annotations

from typing import Any

import peewee

from crmcore import db
from crmcore.db import IdField, TenantModel, utcnow
from crmcore.entities.errors import Conflict, Forbidden, Invalid, NotFound, StaleVersion
from crmcore.entities.models import JSONText
from crmcore.models import User

#: the lists a view can be saved for (the record pages' entities)
VIEW_ENTITIES = ("lead", "contact", "company", "deal")
NAME_MAX = 80


class SavedView(TenantModel):
    id = IdField()
    entity = peewee.CharField(max_length=20)
    name = peewee.CharField(max_length=NAME_MAX)
    #: None: saved by a token bound to no person, for everyone (always shared)
    owner = peewee.ForeignKeyField(User, null=True, on_delete="CASCADE", backref="+")
    shared = peewee.BooleanField(default=False)
    #: {query key: [values]}, as the list page's query string
    query = JSONText(default=dict)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    version = peewee.IntegerField(default=1)

    class Meta:
        table_name = "crm_saved_view"
        indexes = ((("tenant", "entity", "owner", "name"), True),)


MODELS = [SavedView]


def visible_to(user_id: int | None) -> peewee.Expression:
    """The views ``user_id`` may see: their own and the shared ones."""
    shared = SavedView.shared == True  # noqa: E712 - a SQL expression
    return shared if user_id is None else (shared | (SavedView.owner == user_id))


def views_for(entity: str | None, user_id: int | None) -> list[SavedView]:
    """The views of ``entity``'s list (every list if None) that ``user_id`` sees, own
    ones first, then by name: one query."""
    query = SavedView.select().where(visible_to(user_id))
    if entity is not None:
        query = query.where(SavedView.entity == entity)
    mine = peewee.Case(None, [((SavedView.owner == user_id) if user_id is not None else (SavedView.id < 0), 0)], 1)
    return list(query.order_by(SavedView.entity, mine, SavedView.name, SavedView.id))


def view_or_not_found(view_id: int, user_id: int | None) -> SavedView:
    view = SavedView.get_or_none((SavedView.id == view_id) & visible_to(user_id))
    if view is None:
        raise NotFound(f"no saved view {view_id}")
    return view


def check_may_change(view: SavedView, user_id: int | None, may_manage_shared: bool) -> None:
    """Forbidden unless ``user_id`` owns the view, or it is shared and they manage views."""
    if (user_id is not None and view.owner_id == user_id) or (view.shared and may_manage_shared):
        return
    raise Forbidden("Only the view's owner (or, for a shared view, an admin or manager) may change it.")


def _clean_name(name: Any) -> str:
    text = " ".join(str(name or "").split())
    if not text:
        raise Invalid({"name": ["Give the view a name."]})
    if len(text) > NAME_MAX:
        raise Invalid({"name": [f"At most {NAME_MAX} characters."]})
    return text


def _check_unique(entity: str, owner_id: int | None, name: str, exclude_id: int | None = None) -> None:
    same_owner = SavedView.owner.is_null() if owner_id is None else (SavedView.owner == owner_id)
    query = SavedView.select().where((SavedView.entity == entity) & same_owner & (SavedView.name == name))
    if exclude_id is not None:
        query = query.where(SavedView.id != exclude_id)
    existing = query.first()
    if existing is not None:
        raise Conflict(f"you have a view named {name!r} for this list already", existing, "name")


def create(owner_id: int | None, entity: str, name: Any, query: dict[str, list[str]], shared: bool = False) -> SavedView:
    """A new view owned by ``owner_id`` (None: nobody's, so shared); Invalid, or
    Conflict for a name taken."""
    if entity not in VIEW_ENTITIES:
        raise Invalid({"entity": [f"Must be one of: {', '.join(VIEW_ENTITIES)}."]})
    name = _clean_name(name)
    with db.atomic():
        _check_unique(entity, owner_id, name)
        try:
            with db.atomic():
                return SavedView.create(entity=entity, name=name, owner=owner_id, query=query, shared=bool(shared) or owner_id is None)
        except peewee.IntegrityError:  # a concurrent create took the name
            _check_unique(entity, owner_id, name)
            raise


def update(view: SavedView, changes: dict[str, Any], if_version: int | None = None) -> SavedView:
    """Rename, (un)share or replace the filters of ``view``; ``if_version`` guards
    against overwriting a change someone made meanwhile (StaleVersion)."""
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = _clean_name(changes["name"])
        _check_unique(view.entity, view.owner_id, values["name"], exclude_id=view.id)
    if "shared" in changes:
        values["shared"] = bool(changes["shared"]) or view.owner_id is None
    if "query" in changes:
        values["query"] = changes["query"]
    if not values:
        return view
    values.update(updated_at=utcnow(), version=SavedView.version + 1)
    condition = SavedView.id == view.id
    if if_version is not None:
        condition &= SavedView.version == if_version
    with db.atomic():
        if SavedView.update(values).where(condition).execute() == 0:
            raise StaleVersion(f"the saved view changed since you read it (now version {SavedView.get_by_id(view.id).version})")
    return SavedView.get_by_id(view.id)


def delete(view: SavedView, if_version: int | None = None) -> None:
    condition = SavedView.id == view.id
    if if_version is not None:
        condition &= SavedView.version == if_version
    if SavedView.delete().where(condition).execute() == 0:
        raise StaleVersion("the saved view changed since you read it")


def owner_names(views: list[SavedView]) -> dict[int, str]:
    """{user id: name} of the views' owners, one query."""
    ids = sorted({v.owner_id for v in views if v.owner_id is not None})
    if not ids:
        return {}
    return {uid: (name or email) for uid, name, email in User.select(User.id, User.name, User.email).where(User.id.in_(ids)).tuples()}
