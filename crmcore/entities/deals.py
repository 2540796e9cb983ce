"""Deal rules shared by the API, lead conversion and plugins: where a deal sits (pipeline
and stage, with their defaults), which references it may hold, and how it changes stage.

Every write still goes through :mod:`crmcore.entities.service` (audit, versions,
signals after commit); this module decides *what* is written. Bad input raises
:class:`~crmcore.entities.errors.Invalid` (a marshmallow ``ValidationError`` too) with
the API's field names (``stage_id``, ``owner_id`` ...), so callers can answer 422 as they are.
"""

from __future__ import annotations

from typing import Any

import peewee
from marshmallow import ValidationError

from crmcore import db
from crmcore.db import utcnow
from crmcore.entities import custom, service
from crmcore.entities.context import Context, resolve
from crmcore.entities.errors import Invalid
from crmcore.entities.models import Company, Contact, Deal, DealStageChange, Lead, Pipeline, Stage
from crmcore.models import User

#: Active ISO 4217 codes (incl. funds and precious metals), so a typo is caught at entry.
CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD
    BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP
    ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK
    JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK
    MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG
    XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL""".split()
)

#: API field name -> model field name, for the references a deal holds.
REFERENCES = {"pipeline_id": "pipeline", "stage_id": "stage", "contact_id": "contact", "company_id": "company", "lead_id": "lead", "owner_id": "owner"}


def default_currency(ctx: Context | None = None) -> str:
    """The tenant's ``[settings.core] default_currency`` (EUR without settings)."""
    return resolve(ctx).setting("default_currency", None) or "EUR"


def first_stage(pipeline_id: int) -> Stage | None:
    return Stage.select().where(Stage.pipeline == pipeline_id).order_by(Stage.order, Stage.id).first()


def end_of_stage(stage_id: int) -> float:
    """A position after every deal in the stage (new and moved deals go to the bottom)."""
    highest = Deal.select(peewee.fn.MAX(Deal.position)).where(Deal.stage == stage_id).scalar()
    return (highest if highest is not None else 0) + 1


def status_of(stage: Stage) -> str:
    return "won" if stage.is_won else "lost" if stage.is_lost else "open"


def _placement(data: dict[str, Any], deal: Deal | None, errors: dict[str, list[str]]) -> Stage | None:
    """The stage the deal ends up in (None when the input names none that fits)."""
    pipeline = None
    if data.get("pipeline_id") is not None:
        pipeline = Pipeline.get_or_none(Pipeline.id == data["pipeline_id"])
        if pipeline is None:
            errors["pipeline_id"] = ["No such pipeline."]
            return None
    stage = None
    if data.get("stage_id") is not None:
        stage = Stage.get_or_none(Stage.id == data["stage_id"])
        if stage is None:
            errors["stage_id"] = ["No such stage."]
            return None
    if stage is not None:
        # Without a pipeline in the input, a stage must stay in the deal's pipeline (an
        # update) or decides the pipeline (a new deal).
        wanted = pipeline.id if pipeline is not None else deal.pipeline_id if deal is not None else stage.pipeline_id
        if stage.pipeline_id != wanted:
            errors["stage_id"] = ["This stage belongs to another pipeline."]
            return None
        return stage
    if deal is not None and (pipeline is None or pipeline.id == deal.pipeline_id):
        return Stage.get_by_id(deal.stage_id)
    if pipeline is None:
        pipeline = Pipeline.get_or_none(Pipeline.is_default == True)  # noqa: E712
        if pipeline is None:
            errors["pipeline_id"] = ["There is no default pipeline; name one."]
            return None
    stage = first_stage(pipeline.id)
    if stage is None:
        errors["pipeline_id"] = ["This pipeline has no stages."]
    return stage


def prepare(data: dict[str, Any], deal: Deal | None = None, ctx: Context | None = None) -> tuple[dict[str, Any], Stage | None]:
    """Check ``data`` (a new deal, or changes to ``deal``) against the database and fill
    in the defaults; returns (values for the model, the stage the deal ends up in).

    Raises Invalid listing every field that is wrong.
    """
    values = dict(data)
    errors: dict[str, Any] = {}
    stage = _placement(values, deal, errors)
    for key, model in (("contact_id", Contact), ("company_id", Company), ("lead_id", Lead), ("owner_id", User)):
        if values.get(key) is not None and not model.select().where(model.id == values[key]).exists():
            errors[key] = [f"No such {key.removesuffix('_id')} in this tenant."]
    if deal is None and not values.get("currency"):
        values["currency"] = default_currency(ctx)
    if values.get("currency") is not None:
        values["currency"] = str(values["currency"]).upper()
        if values["currency"] not in CURRENCIES:
            errors["currency"] = ["Not an ISO 4217 currency code."]
    if stage is not None:
        moving = deal is None or stage.id != deal.stage_id
        reason = values.get("lost_reason", deal.lost_reason if deal is not None else None)
        if isinstance(reason, str):
            reason = reason.strip() or None
        if stage.is_lost and not reason:
            errors["lost_reason"] = [f"Required: the deal is lost (stage {stage.name!r})."]
        elif not stage.is_lost and values.get("lost_reason"):
            errors["lost_reason"] = ["Only a deal in a lost stage has a lost reason."]
        if stage.is_lost or "lost_reason" in values:
            values["lost_reason"] = reason
        if deal is None:
            values.setdefault("probability", stage.probability)
            values["closed_at"] = utcnow() if (stage.is_won or stage.is_lost) else None
        if moving and values.get("position") is None:
            values["position"] = end_of_stage(stage.id)
        values["stage_id"] = stage.id
        values["pipeline_id"] = stage.pipeline_id
    if "custom" in values or deal is None:
        try:
            values["custom"] = custom.validate("deal", values.get("custom"), deal.custom if deal is not None else None)
        except ValidationError as exc:
            errors.update(exc.messages)
    if errors:
        raise Invalid(errors)
    for api_name, field in REFERENCES.items():
        if api_name in values:
            values[field] = values.pop(api_name)
    return values, stage


def create_deal(data: dict[str, Any], ctx: Context | None = None) -> Deal:
    """Create a deal, checked and completed by :func:`prepare`."""
    with db.atomic():
        values, _stage = prepare(data, None, ctx)
        return service.create(Deal, values)


def change_deal(deal: Deal, data: dict[str, Any], if_version: int | None = None, ctx: Context | None = None) -> Deal:
    """Apply ``data`` to ``deal``; a new stage goes through :func:`service.move_deal`
    (stage history, probability from the stage unless given, closed_at, signal)."""
    with db.atomic():
        values, stage = prepare(data, deal, ctx)
        if stage is not None and stage.id != deal.stage_id:
            values.pop("stage")
            values.pop("pipeline")
            service.move_deal(deal, stage, position=values.pop("position", None), lost_reason=values.pop("lost_reason", None), if_version=if_version)
            if_version = None  # checked by the move, inside this transaction
        else:
            # Not moving: the stage (and so the pipeline) stays as it is.
            values.pop("stage", None)
            values.pop("pipeline", None)
        if values:
            service.update(deal, values, if_version=if_version)
        elif if_version is not None and if_version != deal.version:
            raise service.StaleVersion(f"deal {deal.id} is at version {deal.version}, not {if_version}")
    return deal


def stage_history(deal: Deal) -> list[dict[str, Any]]:
    """Every stage change of the deal, newest first, with the stages' names (two queries)."""
    rows = list(DealStageChange.select().where(DealStageChange.deal == deal.id).order_by(DealStageChange.changed_at.desc(), DealStageChange.id.desc()))
    ids = {r.from_stage_id for r in rows} | {r.to_stage_id for r in rows}
    ids.discard(None)
    names = dict(Stage.select(Stage.id, Stage.name).where(Stage.id.in_(list(ids))).tuples()) if ids else {}
    return [
        {
            "id": r.id,
            "from_stage_id": r.from_stage_id,
            "from_stage_name": names.get(r.from_stage_id),
            "to_stage_id": r.to_stage_id,
            "to_stage_name": names.get(r.to_stage_id),
            "changed_by_id": r.changed_by_id,
            "changed_at": r.changed_at,
            "seconds_in_previous": r.seconds_in_previous,
        }
        for r in rows
    ]
