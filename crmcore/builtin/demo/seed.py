"""Demo data: what ``crm run --demo`` puts in the demo tenant so a newcomer sees a living
CRM (the built-in ``demo`` plugin's ``crm_demo_data`` hook calls :func:`seed`).

A manager and two agents; ~120 companies, ~200 contacts, ~300 leads in every status
and source with BANT answers and tags; ~150 deals in every stage of the default
pipeline with their stage history (won ones, lost ones with reasons); three months of
calls, emails, meetings and notes; open tasks for everyone, some overdue, some due today.

* Deterministic: one seeded ``random.Random``; names come from the small word lists
  below (no dependency). Dates are relative to the moment of seeding, so "due today"
  is today.
* Idempotent: a marker row (an audit entry ``entity="demo_data"``) is written in the
  same transaction as the data; when it exists, :func:`seed` does nothing.
* Fast: rows are built in memory and written with ``insert_many`` in one transaction
  (well under a second on SQLite). Being bulk inserts, they bypass the entity service:
  no per-record audit entries and no ``*_created`` signals (plugins that want demo
  data of their own implement ``crm_demo_data`` too).
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any, Iterable

import peewee
import phonenumbers

from crmcore import auth, db
from crmcore.db import tenant_context, utcnow
from crmcore.entities import deals as deal_rules
from crmcore.entities import vocabulary
from crmcore.entities.models import (
    Activity,
    AuditEntry,
    Company,
    Contact,
    Deal,
    DealStageChange,
    Lead,
    Note,
    Pipeline,
    Stage,
    Tag,
    Tagging,
    Task,
)
from crmcore.entities.service import ensure_default_pipeline
from crmcore.models import User

SEED = 20240517
MARKER_ENTITY = "demo_data"
PASSWORD = "demo"  # the demo users' password, like the admin's (see crmcore.cli.DEMO_ADMIN)

COUNTS = {"companies": 120, "contacts": 200, "leads": 300, "deals": 150}

DEMO_USERS = [
    ("sofia.marin@demo.example", "Sofia Marin", "manager"),
    ("lucas.weber@demo.example", "Lucas Weber", "agent"),
    ("amara.okafor@demo.example", "Amara Okafor", "agent"),
]

FIRST_NAMES = """Anna Ben Carla David Elena Felix Grace Hugo Ines Jonas Kira Leo Maya Noah Olivia Pablo
Quinn Rosa Samuel Tara Umar Vera William Xenia Yusuf Zoe Aiko Bruno Chiara Daniel Emma Farah Georg Hanna
Ivan Julia Karim Lena Marco Nina Oskar Priya Rafael Sara Tobias Ursula Victor Wen Yara Ahmed Beatriz
Clara Diego Eva Finn Giulia Henrik Isabel Jakob Lucia Mateo Nadia""".split()

LAST_NAMES = """Andersson Bauer Costa Dubois Eriksen Fischer Garcia Hansen Ivanova Jensen Kowalski Lambert
Moreau Nielsen Okafor Petrov Quinn Rossi Schmidt Tanaka Usman Varga Wagner Xu Yilmaz Zimmermann Almeida
Becker Chen Dijkstra Esposito Fontaine Gruber Hoffmann Ibrahim Janssen Keller Larsen Martin Novak Olsen
Peters Richter Santos Thomsen Urban Vogel Weiss Young Brennan Carter Delgado Evans Fernandes Gallagher
Huber Iversen Jovanovic Klein Lindqvist""".split()

NAME_START = """North Blue Silver Bright Iron Green Red Oak Stone Swift Clear Summit Harbor Maple Cedar
Pioneer Crystal Golden Polar Solar Nova Alpine Coastal Prairie Urban Atlas Beacon Vertex Horizon Lumen
Falcon Orbit Granite Willow River Meadow Sterling Copper Aurora Zenith""".split()
NAME_END = """wind peak field bridge works line gate point craft ridge stone wave light path forge port
side vale tree brook""".split()
INDUSTRIES = {
    "Software": ["Software", "Systems", "Labs", "Digital"],
    "Logistics": ["Logistics", "Freight", "Shipping"],
    "Manufacturing": ["Manufacturing", "Industries", "Components"],
    "Retail": ["Retail", "Stores", "Market"],
    "Healthcare": ["Health", "Medical", "Care"],
    "Finance": ["Capital", "Finance", "Partners"],
    "Energy": ["Energy", "Power", "Solar"],
    "Food & Beverage": ["Foods", "Kitchen", "Brewing"],
    "Consulting": ["Consulting", "Advisory", "Group"],
    "Media": ["Media", "Studios", "Publishing"],
}
LEGAL = ["Ltd", "GmbH", "Inc.", "BV", "SAS", "AB", "", "", ""]
TLDS = ["com", "de", "co.uk", "io", "nl", "fr", "se", "eu"]
CITIES = [
    ("Hamburg", "+49 40"), ("Berlin", "+49 30"), ("Munich", "+49 89"), ("London", "+44 20"), ("Manchester", "+44 161"),
    ("Amsterdam", "+31 20"), ("Rotterdam", "+31 10"), ("Paris", "+33 1"), ("Lyon", "+33 4"), ("Stockholm", "+46 8"),
    ("Copenhagen", "+45 33"), ("Vienna", "+43 1"), ("Zurich", "+41 44"), ("Madrid", "+34 91"), ("Milan", "+39 02"),
    ("Dublin", "+353 1"), ("Lisbon", "+351 21"), ("Warsaw", "+48 22"),
]
STREETS = ["Harbour Street", "Market Square", "Station Road", "Mill Lane", "Park Avenue", "Bridge Street", "High Street", "Canal Walk", "Linden Allee", "Church Road"]
SIZES = [("1-10", 0.5, 2), ("11-50", 2, 10), ("51-200", 10, 40), ("201-500", 40, 120), ("501-1000", 120, 300), ("1001-5000", 300, 2000)]  # revenue in millions
JOB_TITLES = ["CEO", "CTO", "COO", "Head of Sales", "Sales Manager", "Procurement Lead", "IT Director", "Operations Manager", "Marketing Director",
              "Office Manager", "Finance Director", "Customer Success Lead", "Project Manager", "Founder", "Purchasing Manager", "Head of Operations"]
TAGS = [("vip", "#b45309"), ("newsletter", "#2563eb"), ("webinar", "#7c3aed"), ("trade-show", "#0891b2"), ("partner", "#16a34a"),
        ("enterprise", "#be123c"), ("smb", "#64748b"), ("renewal", "#ca8a04"), ("hot", "#dc2626"), ("inbound", "#0d9488")]
PRODUCTS = ["CRM rollout", "Annual licence", "Support renewal", "Onboarding package", "Data migration", "Pilot project", "API integration",
            "Team expansion", "Premium support", "Training days", "Analytics add-on", "Multi-site licence", "Upgrade to Enterprise", "Custom reports"]
LOST_REASONS = ["Chose a competitor", "Budget was cut", "No decision made", "Price too high", "Timing: revisit next year",
                "Built it in-house", "Champion left the company", "Missing a required feature"]
NEEDS = ["Replace spreadsheets for tracking customers", "Their sales team of 12 misses follow-ups", "Wants one inbox for chat and email",
         "Needs reporting for the board every month", "Looking to automate lead routing", "Current tool is end-of-life next year",
         "Expanding to two new countries", "Support team needs the customer history", "Wants a client portal", "Compliance audit found gaps"]
BUDGETS = ["Under 5k", "5k–15k approved", "15k–50k", "50k+ this year", "Not yet defined", "Pending CFO approval"]
AUTHORITIES = ["Decision maker", "Influencer, reports to the CEO", "Needs board sign-off", "Technical evaluator", "Budget holder"]
TIMELINES = ["This month", "This quarter", "Next quarter", "Within 6 months", "Just exploring"]
CALL_SUBJECTS = ["Discovery call", "Follow-up call", "Pricing questions", "Check-in call", "Call about the proposal", "Reference call", "Left a voicemail"]
EMAIL_SUBJECTS = ["Intro and next steps", "Proposal attached", "Re: pricing", "Case study you asked for", "Follow-up after our demo", "Contract draft", "Meeting notes"]
MEETING_SUBJECTS = ["Product demo", "Kick-off meeting", "On-site workshop", "Quarterly review", "Technical deep dive", "Negotiation meeting"]
CALL_OUTCOMES = ["Connected", "Connected", "Voicemail", "No answer", "Call back requested"]
NOTE_BODIES = [
    "Prefers email over phone. Best reached mornings.",
    "Budget approved for Q{q}; they want to start before summer.",
    "Competitor in the running; our integrations are the key differentiator.",
    "Asked for a reference customer in their industry.",
    "Decision by committee: IT, finance and the head of sales.",
    "Very happy with the trial so far. Wants a discount for a 2-year term.",
    "Legal review of the contract takes about two weeks on their side.",
    "Met at the trade show; interested in the analytics add-on.",
    "Their current provider's contract ends in {m} months.",
    "Send the security questionnaire before the next call.",
]
TASK_TITLES = ["Call {first} back about the proposal", "Send revised quote to {company}", "Prepare the demo for {company}", "Follow up on the contract with {first}",
               "Check in with {first} after the trial", "Book a kick-off meeting with {company}", "Send the case study to {first}", "Ask {first} for the decision date",
               "Update the proposal for {company}", "Confirm the budget with {first}"]
#: Weights of the sources seeded; one the tenant does not accept (chat without the chat
#: plugin) is left out, so the demo holds only values its API would accept.
LEAD_SOURCES = [("form", 30), ("chat", 18), ("referral", 14), ("email", 12), ("manual", 10), ("import", 8), ("sms", 4), ("api", 4)]
LEAD_STATUSES = [("new", 28), ("contacted", 25), ("qualified", 20), ("unqualified", 12), ("converted", 15)]
LIFECYCLE = [("lead", 30), ("opportunity", 25), ("customer", 30), ("subscriber", 10), ("evangelist", 5)]
DEAL_STAGE_SPREAD = [24, 26, 24, 18, 34, 24]  # deals per stage of the default pipeline, in stage order


def is_seeded() -> bool:
    return AuditEntry.select().where(AuditEntry.entity == MARKER_ENTITY).exists()


def seed(tenant: Any, now: dt.datetime | None = None) -> dict[str, int] | None:
    """Seed ``tenant`` once; returns what was created, or None when it was seeded before."""
    with tenant_context(tenant), db.atomic():
        if is_seeded():
            return None
        return Seeder(tenant, now or utcnow()).run()


def _weighted(rng: random.Random, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in pairs], weights=[w for _, w in pairs])[0]


def _slug(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _bulk(model: type, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` oldest first, so ids follow creation order as they do for records
    made one at a time (lists sort "newest first" by id)."""
    if rows and "created_at" in rows[0]:
        rows = sorted(rows, key=lambda r: r["created_at"])
    for batch in peewee.chunked(rows, 100):  # SQLite limits the parameters of one statement
        model.insert_many(batch).execute()


class Seeder:
    """Builds the rows in memory, then writes each table with bulk inserts."""

    def __init__(self, tenant: Any, now: dt.datetime):
        self.tenant_id = tenant.id
        self.now = now.replace(microsecond=0)
        self.rng = random.Random(SEED)
        self.counts: dict[str, int] = {}
        accepted = vocabulary.lead_sources(tenant)
        self.lead_sources = [(source, weight) for source, weight in LEAD_SOURCES if source in accepted]

    # -- small helpers ------------------------------------------------------------

    def ago(self, days_min: float, days_max: float, business_hours: bool = True) -> dt.datetime:
        """A moment between ``days_max`` and ``days_min`` days ago (never in the future)."""
        moment = self.now - dt.timedelta(days=self.rng.uniform(days_min, days_max))
        if business_hours:
            moment = moment.replace(hour=self.rng.randint(8, 17), minute=self.rng.choice((0, 10, 15, 20, 30, 40, 45, 50)), second=0)
        return min(moment, self.now)

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        if end <= start:
            return start
        return start + dt.timedelta(seconds=self.rng.uniform(0, (end - start).total_seconds()))

    def office_hours(self, moment: dt.datetime, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        """``moment`` moved to a working hour of its day, if that stays within [start, end]."""
        moved = moment.replace(hour=self.rng.randint(8, 17))
        return moved if start <= moved <= end else moment

    def base(self, created: dt.datetime, updated: dt.datetime | None = None) -> dict[str, Any]:
        return {"tenant": self.tenant_id, "created_at": created, "updated_at": updated or created, "version": 1}

    def phone(self, prefix: str) -> str:
        """A number of ``prefix``'s area in E.164, as the API stores phones (a number
        the API would refuse is made one digit longer or shorter: a possible one for its country)."""
        digits = f"{prefix}{self.rng.randint(100, 999)}{self.rng.randint(1000, 9999)}".replace(" ", "")
        candidates = [digits, digits + "0", digits[:-1], digits + "00", digits[:-2]]
        return next((c for c in candidates if phonenumbers.is_possible_number(phonenumbers.parse(c))), digits)

    def person(self) -> tuple[str, str]:
        return self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)

    def owner(self, unassigned: float = 0.0) -> int | None:
        if unassigned and self.rng.random() < unassigned:
            return None
        return self.rng.choices(self.user_ids, weights=self.user_weights)[0]

    def read_back(self, model: type, key: Any, keys: Iterable[str], since: int) -> dict[str, int]:
        """Ids of the rows just inserted, by their unique key (no reliance on insert order)."""
        wanted = set(keys)
        return {k: i for i, k in model.select(model.id, key).where(model.id > since).tuples() if k in wanted}

    def max_id(self, model: type) -> int:
        return model.select(peewee.fn.MAX(model.id)).scalar() or 0

    # -- the steps ----------------------------------------------------------------

    def run(self) -> dict[str, int]:
        self.users()
        self.tags()
        self.companies()
        self.contacts()
        self.leads()
        self.deals()
        self.activities_and_notes()
        self.tasks()
        AuditEntry.insert(tenant=self.tenant_id, entity=MARKER_ENTITY, entity_id=0, action="seed", changes=self.counts, at=self.now).execute()
        return self.counts

    def users(self) -> None:
        existing = {u.email: u for u in User.select()}
        password_hash = None
        for email, name, role in DEMO_USERS:
            if email not in existing:
                password_hash = password_hash or auth.hash_password(PASSWORD)  # one slow hash for all three
                existing[email] = User.create(email=email, name=name, role=role, password_hash=password_hash)
        self.users_by_email = existing
        admin = next((u for u in existing.values() if u.role == "admin"), None)
        demo = [existing[e] for e, _, _ in DEMO_USERS]
        people = ([admin] if admin else []) + demo
        self.user_ids = [u.id for u in people]
        # The agents carry most of the work; the admin (who signs in first) has a share.
        self.user_weights = [3 if u is admin else (2 if u.role == "manager" else 4) for u in people]
        self.admin_id = admin.id if admin else demo[0].id
        self.counts["users"] = len(people)

    def tags(self) -> None:
        have = {t.name: t.id for t in Tag.select()}
        missing = [{"tenant": self.tenant_id, "name": n, "colour": c, "created_at": self.now, "version": 1} for n, c in TAGS if n not in have]
        if missing:
            _bulk(Tag, missing)
            have = {t.name: t.id for t in Tag.select()}
        self.tag_ids = {n: have[n] for n, _ in TAGS}
        self.taggings: list[dict[str, Any]] = []

    def tag(self, entity: str, entity_id: int, chance: float, pool: list[str] | None = None) -> list[str]:
        if self.rng.random() >= chance:
            return []
        names = self.rng.sample(pool or list(self.tag_ids), k=self.rng.choice((1, 1, 2)))
        for name in names:
            self.taggings.append({"tenant": self.tenant_id, "tag": self.tag_ids[name], "entity": entity, "entity_id": entity_id})
        return names

    def company_name(self, taken: set[str]) -> tuple[str, str, str]:
        while True:
            industry = self.rng.choice(list(INDUSTRIES))
            stem = self.rng.choice(NAME_START) + self.rng.choice(NAME_END)
            name = f"{stem} {self.rng.choice(INDUSTRIES[industry])}"
            legal = self.rng.choice(LEGAL)
            full = f"{name} {legal}".strip()
            if full not in taken:
                taken.add(full)
                return full, industry, stem

    def companies(self) -> None:
        since = self.max_id(Company)
        taken = {n for (n,) in Company.select(Company.name).tuples()}
        rows = []
        self.company_info: dict[str, dict[str, Any]] = {}
        domains: set[str] = set()
        for _ in range(COUNTS["companies"]):
            name, industry, stem = self.company_name(taken)
            domain = f"{_slug(stem)}-{_slug(INDUSTRIES[industry][0])}.{self.rng.choice(TLDS)}"
            while domain in domains:
                domain = f"{_slug(stem)}{self.rng.randint(2, 99)}.{self.rng.choice(TLDS)}"
            domains.add(domain)
            size, low, high = self.rng.choice(SIZES)
            city, dial = self.rng.choice(CITIES)
            created = self.ago(95, 300)
            owner = self.owner(unassigned=0.1)
            rows.append({
                **self.base(created, self.between(created, self.now)),
                "name": name, "domain": domain, "industry": industry, "size": size,
                "annual_revenue": Decimal(round(self.rng.uniform(low, high), 1)) * 1_000_000,
                "address": f"{self.rng.randint(1, 180)} {self.rng.choice(STREETS)}, {city}",
                "website": f"https://www.{domain}", "owner": owner, "custom": {},
            })
            self.company_info[name] = {"domain": domain, "dial": dial, "owner": owner, "created": created, "industry": industry}
        _bulk(Company, rows)
        ids = self.read_back(Company, Company.name, self.company_info, since)
        for name, info in self.company_info.items():
            info["id"] = ids[name]
            self.tag("company", info["id"], 0.25, ["vip", "partner", "enterprise", "smb", "renewal"])
        self.company_names = list(self.company_info)
        self.counts["companies"] = len(rows)

    def contacts(self) -> None:
        since = self.max_id(Contact)
        taken = {e for (e,) in Contact.select(Contact.email).where(Contact.email.is_null(False)).tuples()}
        rows = []
        self.contact_info: dict[str, dict[str, Any]] = {}
        for i in range(COUNTS["contacts"]):
            first, last = self.person()
            # Every company gets a contact first; the rest spread out, a few with no company.
            company = self.company_names[i] if i < len(self.company_names) else (self.rng.choice(self.company_names) if self.rng.random() < 0.93 else None)
            info = self.company_info.get(company) if company else None
            domain = info["domain"] if info else self.rng.choice(["gmail.com", "outlook.com", "proton.me", "web.de"])
            email = f"{first}.{last}@{domain}".lower()
            n = 2
            while email in taken:
                email = f"{first}.{last}{n}@{domain}".lower()
                n += 1
            taken.add(email)
            created = self.between(info["created"], self.now - dt.timedelta(days=60)) if info else self.ago(60, 200)
            rows.append({
                **self.base(created, self.between(created, self.now)),
                "first_name": first, "last_name": last, "email": email, "emails": [], "phones": [],
                "phone": self.phone(info["dial"] if info else self.rng.choice(CITIES)[1]),
                "job_title": self.rng.choice(JOB_TITLES), "company": info["id"] if info else None,
                "lifecycle_stage": _weighted(self.rng, LIFECYCLE), "consent_email": self.rng.random() < 0.6,
                "consent_sms": self.rng.random() < 0.2, "language": self.rng.choice(["en", "en", "de", "fr", "nl", "es"]),
                "owner": info["owner"] if info and info["owner"] else self.owner(), "custom": {},
            })
            self.contact_info[email] = {"company": company, "first": first, "last": last, "created": created}
        _bulk(Contact, rows)
        ids = self.read_back(Contact, Contact.email, self.contact_info, since)
        self.contacts_by_company: dict[str | None, list[int]] = {}
        for email, info in self.contact_info.items():
            info["id"] = ids[email]
            self.contacts_by_company.setdefault(info["company"], []).append(info["id"])
            self.tag("contact", info["id"], 0.2, ["newsletter", "webinar", "vip", "trade-show"])
        self.contact_by_id = {info["id"]: info for info in self.contact_info.values()}
        self.counts["contacts"] = len(rows)

    def leads(self) -> None:
        since = self.max_id(Lead)
        taken = {e for (e,) in Lead.select(Lead.email).where(Lead.email.is_null(False)).tuples()}
        rows = []
        self.lead_info: dict[str, dict[str, Any]] = {}
        prospect_names: set[str] = set(self.company_names)
        converted_contacts = [c for c in self.contact_info.values() if c["company"]]
        self.rng.shuffle(converted_contacts)
        for _ in range(COUNTS["leads"]):
            status = _weighted(self.rng, LEAD_STATUSES)
            created = self.ago(0, 90)
            contact = company_id = None
            if status == "converted" and converted_contacts:
                c = converted_contacts.pop()
                first, last, company = c["first"], c["last"], c["company"]
                contact, company_id = c["id"], self.company_info[company]["id"]
                domain = self.company_info[company]["domain"]
            else:
                first, last = self.person()
                company, industry, stem = self.company_name(prospect_names)
                domain = f"{_slug(stem)}.{self.rng.choice(TLDS)}"
            email = f"{first}.{last}@{domain}".lower()
            n = 2
            while email in taken:
                email = f"{first}{n}.{last}@{domain}".lower()
                n += 1
            taken.add(email)
            worked = status in ("contacted", "qualified", "converted", "unqualified")
            bant = status in ("qualified", "converted") or (status == "contacted" and self.rng.random() < 0.5)
            last_contact = self.between(created, self.now) if worked else None
            rows.append({
                **self.base(created, last_contact or created),
                "name": f"{first} {last}", "email": email, "phone": self.phone(self.rng.choice(CITIES)[1]) if self.rng.random() < 0.7 else None,
                "company_name": company, "source": _weighted(self.rng, self.lead_sources), "status": status,
                "priority": self.rng.choices(["low", "medium", "high"], weights=[25, 55, 20])[0], "owner": self.owner(unassigned=0.12 if status == "new" else 0.0),
                "estimated_value": Decimal(self.rng.randrange(1_000, 80_000, 500)) if self.rng.random() < 0.75 else None,
                "last_contact_at": last_contact,
                "budget": self.rng.choice(BUDGETS) if bant else None, "authority": self.rng.choice(AUTHORITIES) if bant else None,
                "need": self.rng.choice(NEEDS) if bant or self.rng.random() < 0.3 else None, "timeline": self.rng.choice(TIMELINES) if bant else None,
                "converted_at": self.between(created, self.now) if status == "converted" else None,
                "contact": contact, "company": company_id, "custom": {},
            })
            self.lead_info[email] = {"status": status, "created": created, "owner": rows[-1]["owner"], "first": first, "company": company, "contact": contact}
        _bulk(Lead, rows)
        ids = self.read_back(Lead, Lead.email, self.lead_info, since)
        for email, info in self.lead_info.items():
            info["id"] = ids[email]
            self.tag("lead", info["id"], 0.4, ["hot", "webinar", "newsletter", "trade-show", "inbound", "smb", "enterprise"])
        self.counts["leads"] = len(rows)

    def deals(self) -> None:
        pipeline = Pipeline.get_or_none(Pipeline.is_default == True)  # noqa: E712
        if pipeline is None:
            pipeline = ensure_default_pipeline(db.current_tenant())
        stages = list(Stage.select().where(Stage.pipeline == pipeline.id).order_by(Stage.order, Stage.id))
        open_stages = [s for s in stages if not s.is_won and not s.is_lost]
        plan: list[Stage] = []
        spread = DEAL_STAGE_SPREAD if len(stages) == len(DEAL_STAGE_SPREAD) else [COUNTS["deals"] // len(stages)] * len(stages)
        for stage, count in zip(stages, spread):
            plan += [stage] * count
        self.rng.shuffle(plan)
        currency = deal_rules.default_currency()
        since = self.max_id(Deal)
        taken = {t for (t,) in Deal.select(Deal.title).tuples()}
        rows, self.deal_info = [], {}
        positions: dict[int, int] = {}
        converted = [lead for lead in self.lead_info.values() if lead["status"] == "converted" and lead["contact"] is not None]
        for stage in plan:
            lead = converted.pop() if converted and self.rng.random() < 0.5 else None
            if lead is not None:
                company = lead["company"]
                contact_id = lead["contact"]
            else:
                company = self.rng.choice(self.company_names)
                contact_id = self.rng.choice(self.contacts_by_company.get(company) or [None])
            info = self.company_info[company]
            short = company.rsplit(" ", 1)[0] if company.rsplit(" ", 1)[-1] in LEGAL else company
            products = self.rng.sample(PRODUCTS, len(PRODUCTS))
            title = next((f"{short} – {p}" for p in products if f"{short} – {p}" not in taken), f"{short} – {products[0]}, phase 2")
            taken.add(title)
            created = self.ago(25, 90) if (stage.is_won or stage.is_lost) else self.ago(2, 80)  # closed deals are older
            # The stages the deal went through: open stages up to its own, and for a won
            # or lost deal, a few open stages then the closing one.
            if stage.is_won or stage.is_lost:
                reached = self.rng.randint(1, len(open_stages)) if stage.is_won else self.rng.randint(0, len(open_stages) - 1)
                path = open_stages[: max(reached, 1)] + [stage]
            else:
                path = open_stages[: open_stages.index(stage) + 1]
            latest = self.now - dt.timedelta(hours=2)
            moments = sorted(self.office_hours(self.between(created, latest), created, latest) for _ in path[1:])
            entered = moments[-1] if moments else created
            owner = lead["owner"] if lead and lead["owner"] else (info["owner"] or self.owner())
            closed = entered if (stage.is_won or stage.is_lost) else None
            value = Decimal(self.rng.choice([self.rng.randrange(1_500, 20_000, 100), self.rng.randrange(10_000, 60_000, 500), self.rng.randrange(40_000, 150_000, 1_000)]))
            positions[stage.id] = positions.get(stage.id, 0) + 1
            rows.append({
                **self.base(created, entered),
                "title": title, "value": value, "currency": currency, "probability": stage.probability,
                "expected_close_date": (closed.date() if closed else (self.now + dt.timedelta(days=self.rng.randint(-5, 75))).date()),
                "pipeline": pipeline.id, "stage": stage.id, "position": float(positions[stage.id]), "stage_entered_at": entered,
                "contact": contact_id, "company": info["id"], "lead": lead["id"] if lead else None, "owner": owner,
                "priority": self.rng.choices(["low", "medium", "high"], weights=[20, 55, 25])[0],
                "source": self.rng.choice(["referral", "website", "outbound", "event", "partner", "inbound"]),
                "lost_reason": self.rng.choice(LOST_REASONS) if stage.is_lost else None, "closed_at": closed, "custom": {},
            })
            self.deal_info[title] = {"path": path, "moments": moments, "created": created, "owner": owner, "stage": stage,
                                     "company": company, "company_id": info["id"], "contact": contact_id, "end": closed or self.now}
        _bulk(Deal, rows)
        ids = self.read_back(Deal, Deal.title, self.deal_info, since)
        history = []
        for title, info in self.deal_info.items():
            info["id"] = ids[title]
            previous_at = info["created"]
            for before, after, at in zip(info["path"], info["path"][1:], info["moments"]):
                history.append({"tenant": self.tenant_id, "deal": info["id"], "from_stage": before.id, "to_stage": after.id,
                                "changed_by": info["owner"], "changed_at": at, "seconds_in_previous": int((at - previous_at).total_seconds())})
                previous_at = at
            self.tag("deal", info["id"], 0.3, ["vip", "renewal", "hot", "enterprise", "partner"])
        _bulk(DealStageChange, history)
        self.counts["deals"] = len(rows)
        self.counts["stage_changes"] = len(history)

    def activities_and_notes(self) -> None:
        activities, notes = [], []

        def activity(link: dict[str, Any], start: dt.datetime, end: dt.datetime, user: int | None, kind: str | None = None) -> dt.datetime:
            kind = kind or self.rng.choices(["call", "email", "meeting"], weights=[45, 40, 15])[0]
            at = self.office_hours(self.between(start, end), start, end).replace(second=0, microsecond=0)
            row = {"tenant": self.tenant_id, "kind": kind, "occurred_at": at, "created_at": at, "updated_at": at, "version": 1, "user": user,
                   "lead": None, "contact": None, "company": None, "deal": None, "outcome": None, "duration_seconds": None, "direction": None,
                   "channel": None, "next_step": None, "sentiment": None, **link}
            if kind == "call":
                row.update(subject=self.rng.choice(CALL_SUBJECTS), direction=self.rng.choice(["out", "out", "in"]), outcome=self.rng.choice(CALL_OUTCOMES),
                           duration_seconds=self.rng.randint(60, 1800), content="Talked through their current process and next steps.", channel="phone")
            elif kind == "email":
                row.update(subject=self.rng.choice(EMAIL_SUBJECTS), direction=self.rng.choice(["out", "in"]), channel="email",
                           content="Thanks for your time today. As promised, here is the information we discussed.")
            else:
                row.update(subject=self.rng.choice(MEETING_SUBJECTS), duration_seconds=self.rng.choice([1800, 2700, 3600, 5400]),
                           content="Agenda: their goals, a walkthrough, pricing and timeline.", next_step=self.rng.choice(["Send proposal", "Schedule follow-up", "Share references", None]))
            activities.append(row)
            return at

        def note(link: dict[str, Any], start: dt.datetime, end: dt.datetime, author: int | None) -> None:
            at = self.office_hours(self.between(start, end), start, end)
            body = self.rng.choice(NOTE_BODIES).format(q=self.rng.randint(1, 4), m=self.rng.randint(2, 9))
            notes.append({"tenant": self.tenant_id, "body": body, "pinned": self.rng.random() < 0.1, "mentions": [], "author": author,
                          "created_at": at, "updated_at": at, "version": 1, "lead": None, "contact": None, "company": None, "deal": None, **link})

        for info in self.deal_info.values():
            link = {"deal": info["id"], "company": info["company_id"], "contact": info["contact"]}
            for _ in range(self.rng.randint(2, 7)):
                activity(link, info["created"], info["end"], info["owner"])
            if self.rng.random() < 0.6:
                note(link, info["created"], info["end"], info["owner"])
        last_contact: dict[int, dt.datetime] = {}
        for info in self.lead_info.values():
            if info["status"] == "new":
                continue
            link = {"lead": info["id"]}
            for _ in range(self.rng.randint(1, 4)):
                at = activity(link, info["created"], self.now, info["owner"], kind=self.rng.choice(["call", "email", "email"]))
                last_contact[info["id"]] = max(at, last_contact.get(info["id"], at))
            if self.rng.random() < 0.3:
                note(link, info["created"], self.now, info["owner"])
        for info in self.rng.sample(list(self.company_info.values()), 30):
            note({"company": info["id"]}, self.now - dt.timedelta(days=90), self.now, info["owner"] or self.owner())
        _bulk(Activity, activities)
        _bulk(Note, notes)
        self._last_contact(last_contact)  # a lead's last contact: its latest call or email
        self.counts["activities"] = len(activities)
        self.counts["notes"] = len(notes)

    def _last_contact(self, last_contact: dict[int, dt.datetime]) -> None:
        """Set leads' last_contact_at from their activities: one UPDATE ... CASE per batch."""
        items = sorted(last_contact.items())
        for batch in peewee.chunked(items, 100):
            case = peewee.Case(Lead.id, [(lead_id, at) for lead_id, at in batch])
            Lead.update(last_contact_at=case).where(Lead.id.in_([lead_id for lead_id, _ in batch])).execute()

    def tasks(self) -> None:
        rows = []
        open_deals = [d for d in self.deal_info.values() if not (d["stage"].is_won or d["stage"].is_lost)]
        open_leads = [lead for lead in self.lead_info.values() if lead["status"] in ("new", "contacted", "qualified")]
        today = self.now.replace(hour=0, minute=0, second=0, microsecond=0)

        def task(user: int, due: dt.datetime | None, status: str = "open") -> None:
            # A user's tasks are about their own deals and leads (any, if they have none).
            deals = [d for d in open_deals if d["owner"] == user] or open_deals
            leads = [lead for lead in open_leads if lead["owner"] == user] or open_leads
            if self.rng.random() < 0.65 and deals:
                d = self.rng.choice(deals)
                contact = self.contact_by_id.get(d["contact"]) if d["contact"] else None
                first = contact["first"] if contact else "them"
                link = {"deal": d["id"], "lead": None}
                company = d["company"]
            else:
                lead = self.rng.choice(leads)
                first, company = lead["first"], lead["company"]
                link = {"lead": lead["id"], "deal": None}
            created = min(self.ago(1, 20), due) if due else self.ago(1, 20)
            rows.append({
                "tenant": self.tenant_id, "title": self.rng.choice(TASK_TITLES).format(first=first, company=company), "due_at": due,
                "assignee": user, "status": status, "priority": self.rng.choices(["low", "medium", "high"], weights=[20, 55, 25])[0],
                "completed_at": self.between(created, self.now) if status == "done" else None, "reminder_at": None,
                "created_at": created, "updated_at": created, "version": 1, "contact": None, "company": None, **link,
            })

        for user in self.user_ids:
            for _ in range(self.rng.randint(3, 5)):  # overdue
                task(user, (today - dt.timedelta(days=self.rng.randint(1, 10))).replace(hour=self.rng.randint(9, 17)))
            for _ in range(self.rng.randint(3, 4)):  # due today
                task(user, today.replace(hour=self.rng.randint(9, 17), minute=self.rng.choice((0, 30))))
            for _ in range(self.rng.randint(6, 10)):  # upcoming
                task(user, (today + dt.timedelta(days=self.rng.randint(1, 21))).replace(hour=self.rng.randint(9, 17)))
            for _ in range(self.rng.randint(1, 2)):  # some day
                task(user, None)
            for _ in range(self.rng.randint(8, 14)):  # done, in the past
                task(user, today - dt.timedelta(days=self.rng.randint(1, 60)), status="done")
        _bulk(Task, rows)
        _bulk(Tagging, self.taggings)
        self.counts["tasks"] = len(rows)
        self.counts["taggings"] = len(self.taggings)
