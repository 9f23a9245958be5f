"""Demo Dataverse tap: ``contacts`` and the custom ``cr123_sessions`` table, as OData rows.

Rows look like ``GET /api/data/v9.2/<entityset>`` answers with
``Prefer: odata.include-annotations="*"``: ``@odata.etag``, GUID keys, ``_x_value`` lookups
with their FormattedValue / lookuplogicalname / associatednavigationproperty annotations
(annotations precede their property, as Dataverse writes them), integer choices, date-only
``birthdate`` and explicit nulls for empty columns. Every session's ``_cr123_client_value``
points at a contact emitted earlier in the same run, and its ``cr123_notes`` is a clinical
note (PHI). Contacts are the practice's shared clients (``people.py``).
"""

from __future__ import annotations

from engine.demo_taps import canary, texts
from engine.demo_taps.common import guid, iso_z, mix64, split_counts, timeline
from engine.demo_taps.people import People
from engine.demo_taps.spec import (
    Record,
    StreamPlan,
    TapContext,
    TapPlan,
    integer,
    make_plan,
    stream_schema,
    string,
)

FORMATTED = "@OData.Community.Display.V1.FormattedValue"
LOGICAL = "@Microsoft.Dynamics.CRM.lookuplogicalname"
NAVIGATION = "@Microsoft.Dynamics.CRM.associatednavigationproperty"
WEIGHTS = (40, 60)

CONTACT_SCHEMA = stream_schema({
    "@odata.etag": string(), "contactid": string(False), "fullname": string(),
    "firstname": string(), "lastname": string(), "emailaddress1": string(),
    "telephone1": string(), "mobilephone": string(), "birthdate": string(fmt="date"),
    "address1_line1": string(), "address1_line2": string(), "address1_city": string(),
    "address1_stateorprovince": string(), "address1_postalcode": string(),
    "address1_country": string(), "description": string(),
    "createdon": string(fmt="date-time"), "modifiedon": string(fmt="date-time"),
    "statecode": integer(), "statecode" + FORMATTED: string(),
    "statuscode": integer(), "statuscode" + FORMATTED: string(),
    "_parentcustomerid_value": string(), "_ownerid_value": string(),
    "_ownerid_value" + FORMATTED: string(), "_ownerid_value" + LOGICAL: string(),
})
SESSION_SCHEMA = stream_schema({
    "@odata.etag": string(), "cr123_sessionid": string(False), "cr123_name": string(),
    "_cr123_client_value": string(), "_cr123_client_value" + FORMATTED: string(),
    "_cr123_client_value" + LOGICAL: string(), "_cr123_client_value" + NAVIGATION: string(),
    "cr123_start": string(fmt="date-time"), "cr123_end": string(fmt="date-time"),
    "cr123_status": integer(), "cr123_status" + FORMATTED: string(),
    "cr123_modality": integer(), "cr123_modality" + FORMATTED: string(),
    "cr123_servicecode": string(), "cr123_notes": string(),
    "_ownerid_value": string(), "_ownerid_value" + FORMATTED: string(),
    "_ownerid_value" + LOGICAL: string(),
    "createdon": string(fmt="date-time"), "modifiedon": string(fmt="date-time"),
    "statecode": integer(), "statuscode": integer(),
})
STATUSES = (
    (100000000, "Completed"),) * 12 + (
    (100000001, "Cancelled"), (100000002, "No-show"), (100000003, "Scheduled"),
    (100000003, "Scheduled"),
)
MODALITIES = ((100000000, "In person"), (100000001, "Telehealth"), (100000002, "Phone"))
SERVICES = (("90834", 45), ("90837", 53), ("90837", 60), ("90791", 60), ("90847", 50),
            ("90832", 30), ("90834", 45), ("90837", 55))
COUNTRIES = ("United States", "United States", "US", None)


class Practice:
    """The Dataverse environment: owners (clinicians) and the client directory."""

    def __init__(self, ctx: TapContext, n_contacts: int) -> None:
        self.people = People(ctx.seed)
        self.n_contacts = n_contacts
        self.contact_key = ctx.key("contacts")
        self.session_key = ctx.key("sessions")
        self.owners = [
            (guid(ctx.key("owner", n)), name) for n, (name, _) in enumerate(texts.CLINICIANS)
        ]
        self.contact_start, self.contact_step = timeline(ctx.key("contact-time"), n_contacts)
        self.etag = 700_000 + ctx.key("etag") % 200_000

    def contact_id(self, j: int) -> str:
        """The GUID of contact ``j`` (sessions call this to point at their client)."""
        return guid(mix64(self.contact_key ^ j))

    def contact(self, j: int) -> Record:
        """Contact row ``j``."""
        h = mix64(self.contact_key ^ j ^ 0x5A5A)
        p = self.people.get(j)
        owner_id, owner_name = self.owners[h % len(self.owners)]
        created = self.contact_start + j * self.contact_step + h % self.contact_step
        active = (h >> 8) % 20 != 0
        return {
            "@odata.etag": f'W/"{self.etag + j * 7 + h % 7}"',
            "contactid": self.contact_id(j),
            "fullname": p.full,
            "firstname": p.given,
            "lastname": p.family,
            "emailaddress1": None if j and (h >> 12) % 20 == 0 else p.email,
            "telephone1": p.phone(1),
            "mobilephone": None if (h >> 16) % 3 == 0 else p.phone(0),
            "birthdate": None if j and (h >> 20) % 25 == 0 else p.birth_date,
            "address1_line1": p.street,
            "address1_line2": "Apt 3B" if (h >> 24) % 8 == 0 else None,
            "address1_city": p.city,
            "address1_stateorprovince": p.state,
            "address1_postalcode": p.postal,
            "address1_country": COUNTRIES[(h >> 28) % len(COUNTRIES)],
            "description": canary.CANARY_SENTENCE if j == 0 else None,
            "createdon": iso_z(created),
            "modifiedon": iso_z(created + (h >> 32) % (90 * 86_400)),
            "statecode" + FORMATTED: "Active" if active else "Inactive",
            "statecode": 0 if active else 1,
            "statuscode" + FORMATTED: "Active" if active else "Inactive",
            "statuscode": 1 if active else 2,
            "_parentcustomerid_value": None,
            "_ownerid_value" + FORMATTED: owner_name,
            "_ownerid_value" + LOGICAL: "systemuser",
            "_ownerid_value": owner_id,
        }


class Sessions:
    """Record factory for ``cr123_sessions``; each row's client is an emitted contact."""

    def __init__(self, ctx: TapContext, practice: Practice, count: int) -> None:
        self.practice = practice
        self.key = ctx.key("session-rows")
        self.start, self.step = timeline(ctx.key("session-time"), count)
        self.start -= self.start % 900

    def _note(self, k: int, h: int, first: str, family: str, dob: str) -> str:
        if k == 0:
            return f"Session note: {canary.CANARY_SENTENCE} Continue weekly CBT."
        template = texts.NOTES[(h >> 40) % len(texts.NOTES)]
        return template.format(
            first=first, family=family, dob=dob,
            topic=texts.TOPICS[(h >> 44) % len(texts.TOPICS)],
            dx=texts.DIAGNOSES[(h >> 48) % len(texts.DIAGNOSES)],
            n2=(h >> 52) % 27, n3=(h >> 56) % 21, phone="the number on file",
        )

    def person(self, k: int) -> int:
        """The client (contact index) of session row ``k``."""
        return 0 if k == 0 else mix64(self.key ^ k) % max(self.practice.n_contacts, 1)

    def session(self, k: int) -> Record:
        """Session row ``k``."""
        practice = self.practice
        h = mix64(self.key ^ k)
        j = self.person(k)
        person = practice.people.get(j)
        code, minutes = SERVICES[(h >> 8) % len(SERVICES)]
        status, status_label = STATUSES[(h >> 12) % len(STATUSES)]
        modality, modality_label = MODALITIES[(h >> 16) % len(MODALITIES)]
        owner_id, owner_name = practice.owners[(h >> 20) % len(practice.owners)]
        start = self.start + k * self.step - (k * self.step) % 900
        return {
            "@odata.etag": f'W/"{practice.etag + 500_000 + k * 5 + h % 5}"',
            "cr123_sessionid": guid(h),
            "cr123_name": f"S-{k + 1:06d}",
            "_cr123_client_value" + FORMATTED: person.full,
            "_cr123_client_value" + NAVIGATION: "cr123_Client",
            "_cr123_client_value" + LOGICAL: "contact",
            "_cr123_client_value": practice.contact_id(j),
            "cr123_start": iso_z(start),
            "cr123_end": iso_z(start + minutes * 60),
            "cr123_status" + FORMATTED: status_label,
            "cr123_status": status,
            "cr123_modality" + FORMATTED: modality_label,
            "cr123_modality": modality,
            "cr123_servicecode": code,
            "cr123_notes": self._note(k, h, person.given, person.family, person.birth_date),
            "_ownerid_value" + FORMATTED: owner_name,
            "_ownerid_value" + LOGICAL: "systemuser",
            "_ownerid_value": owner_id,
            "createdon": iso_z(start - 86_400 * (1 + (h >> 24) % 14)),
            "modifiedon": iso_z(start + minutes * 60 + (h >> 28) % 7200),
            "statecode": 0,
            "statuscode": 1,
        }


def plan(ctx: TapContext) -> TapPlan:
    """The Dataverse tap: ``contacts`` (40%) first, then ``cr123_sessions`` (60%)."""
    n_contacts, n_sessions = split_counts(ctx.records, WEIGHTS)
    practice = Practice(ctx, n_contacts)
    sessions = Sessions(ctx, practice, n_sessions)
    return make_plan(ctx, [
        StreamPlan(
            name="contacts", schema=CONTACT_SCHEMA, key_properties=["contactid"],
            count=n_contacts, make=practice.contact, text_field="description",
        ),
        StreamPlan(
            name="cr123_sessions", schema=SESSION_SCHEMA, key_properties=["cr123_sessionid"],
            count=n_sessions, make=sessions.session, text_field="cr123_notes",
        ),
    ])
