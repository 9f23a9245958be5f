"""Mail content shared by the Gmail and Microsoft Graph demo taps.

A mailbox holds three kinds of message: its own traffic (from pools built per tap, account
and seed), the canary message (record 0), and, at every tenth slot, a message from a pool
keyed by the seed alone. The seed-keyed messages carry the same Message-ID, subject, sender
and Date in every mailbox and in both taps, which is exactly the cross-account duplicate the
pipeline must deduplicate on Message-ID.
"""

from __future__ import annotations

import html
import random
from collections.abc import Callable
from dataclasses import dataclass
from email.header import Header

from engine.demo_taps import canary, texts
from engine.demo_taps.common import mix64, timeline
from engine.demo_taps.people import GMAIL_CLIENT, People, Person, gmail_variant
from engine.demo_taps.spec import TapContext

ZONES: tuple[tuple[str, int], ...] = (
    ("-0500", -18000), ("-0800", -28800), ("+0000", 0), ("EST", -18000),
    ("+0000 (UTC)", 0), ("-0700 (PDT)", -25200), ("+0100", 3600), ("+0530", 19800),
    ("-0400", -14400), ("GMT", 0),
)
"""Date header zones as senders write them: numeric, obsolete names, comments."""
SHARED_EVERY = 10
SHARED_SLOT = 7
STAFF_SLOT = 3
"""Every tenth message from here is a staff-only thread about a client (links to no one)."""
CLIENT_SLOT = 5
"""Every tenth message from here is with a low-index client, cycling through the traps."""
CLIENT_CYCLE = (2, 6, 1, 6, 4, 5, 7, 3, 9, 6, 8, 1)
"""Clients written to at CLIENT_SLOT: the family address (2, 3), the Gmail client's
variants (6), the name twins (4, 5) and plain clients."""
STAFF = ("Front Desk", "frontdesk@practice.example.org")
SHARED_STEP = 3 * 3600
TEAM_ADDRESS = "team@practice.example.org"
_POOL_PARTIES = 256
_POOL_SUBJECTS = 64
_POOL_BODIES = 96


@dataclass(frozen=True, slots=True)
class Party:
    """A mailbox: display name, address and the header text the sender's client wrote."""

    name: str
    address: str
    header: str
    person: int | None = None
    """The synthetic client behind this address (ground truth for tests), if any."""


@dataclass(frozen=True, slots=True)
class Body:
    """A message text in plain and HTML form, encoded in its declared charset."""

    text: str
    html: str
    charset: str
    text_bytes: bytes
    html_bytes: bytes
    snippet: str
    preview: str


@dataclass(frozen=True, slots=True)
class Mail:
    """One message's content, independent of how Gmail or Graph present it."""

    message_id: str | None
    subject_header: str
    subject: str
    sender: Party
    to: tuple[Party, ...]
    cc: tuple[Party, ...]
    sent: int
    zone: int
    body: Body
    outgoing: bool

    @property
    def persons(self) -> tuple[int, ...]:
        """The synthetic clients taking part (ground truth for the client-linking tests)."""
        found = [p.person for p in (self.sender, *self.to, *self.cc) if p.person is not None]
        return tuple(dict.fromkeys(found))


def party(name: str, address: str, style: int, person: int | None = None) -> Party:
    """A Party whose header uses one of the forms seen in the wild."""
    if style == 1 and "," not in name:
        header = f'"{name}" <{address}>'
    elif style == 2:
        header = address
    elif not name.isascii():
        header = f"{encoded_words(name)} <{address}>"
    elif any(c in name for c in ',."'):
        header = f'"{name}" <{address}>'
    else:
        header = f"{name} <{address}>"
    return Party(name, address, header, person)


def person_party(person: Person, style: int, address: str | None = None) -> Party:
    """A client as a mail party; style 3 writes the name ``"Family, Given"``."""
    address = address or person.email
    if style == 3:
        return party(f"{person.family}, {person.given}", address, 0, person.index)
    return party(person.full, address, style, person.index)


def make_body(text: str, rng: random.Random) -> Body:
    """Plain + HTML renderings of ``text`` and their encoded bytes."""
    lines = [html.escape(line, quote=False) for line in text.split("\n")]
    markup = '<div dir="ltr">' + "<br>".join(lines) + "</div>"
    if not text.isascii() and all(ord(c) < 256 for c in text) and rng.random() < 0.6:
        charset = "iso-8859-1"
    else:
        charset = "UTF-8" if rng.random() < 0.8 else "utf-8"
    flat = " ".join(text.split())
    snippet = html.escape(flat[:200], quote=True).replace("&#x27;", "&#39;")
    return Body(
        text=text,
        html=markup,
        charset=charset,
        text_bytes=text.replace("\n", "\r\n").encode(charset),
        html_bytes=markup.encode(charset),
        snippet=snippet,
        preview=flat[:255],
    )


def _subject_header(subject: str, rng: random.Random) -> str:
    """Non-ASCII subjects are usually RFC 2047 encoded words; some arrive raw UTF-8."""
    if subject.isascii() or rng.random() < 0.3:
        return subject
    return encoded_words(subject)


def encoded_words(text: str) -> str:
    """RFC 2047 encoded words, unfolded onto one line as the Gmail API shows them."""
    return Header(text, "utf-8").encode().replace("\n ", " ")


class MailPools:
    """Parties, subjects and bodies for one mailbox (or for the seed-wide shared pool)."""

    def __init__(self, key: int, people: People, owner: Party) -> None:
        rng = random.Random(key)
        self.owner = owner
        self.parties = [
            person_party(people.get(1 + rng.randrange(2000)), rng.randrange(4))
            for _ in range(_POOL_PARTIES)
        ]
        self.parties += [party(n, a, rng.randrange(3)) for n, a in texts.VENDORS]
        self.subjects = [self._subject(rng, people) for _ in range(_POOL_SUBJECTS)]
        self.bodies = [self._body(rng, people) for _ in range(_POOL_BODIES)]

    @staticmethod
    def _fill(template: str, rng: random.Random, people: People) -> str:
        person = people.get(1 + rng.randrange(2000))
        clin, _ = rng.choice(texts.CLINICIANS)
        return template.format(
            first=person.given, family=person.family, dob=person.birth_date,
            clin=clin, clin_first=clin.split()[1] if clin.startswith("Dr.") else clin.split()[0],
            day=rng.choice(texts.WEEKDAYS), time=rng.choice(texts.TIMES),
            topic=rng.choice(texts.TOPICS), month=rng.choice(texts.MONTHS),
            n=rng.randrange(10_000, 99_999), n2=rng.randrange(0, 27), n3=rng.randrange(0, 21),
            dx=rng.choice(texts.DIAGNOSES), street=person.street, city=person.city,
            phone=person.phone(rng.randrange(4)),
        )

    def _subject(self, rng: random.Random, people: People) -> tuple[str, str]:
        subject = self._fill(rng.choice(texts.SUBJECTS), rng, people)
        return _subject_header(subject, rng), subject

    def _body(self, rng: random.Random, people: People) -> Body:
        return make_body(self._fill(rng.choice(texts.BODIES), rng, people), rng)

    def mail(self, h: int, message_id: str | None, sent: int, zone: int) -> Mail:
        """The message for mixed bits ``h``."""
        subject_header, subject = self.subjects[(h >> 8) % len(self.subjects)]
        other = self.parties[(h >> 16) % len(self.parties)]
        outgoing = (h >> 38) % 8 == 0
        cc = (self.parties[(h >> 24) % len(self.parties)],) if (h >> 56) % 5 == 0 else ()
        return Mail(
            message_id=message_id,
            subject_header=subject_header,
            subject=subject,
            sender=self.owner if outgoing else other,
            to=(other,) if outgoing else (self.owner,),
            cc=cc,
            sent=sent,
            zone=zone,
            body=self.bodies[(h >> 32) % len(self.bodies)],
            outgoing=outgoing,
        )


def owner_party(ctx: TapContext) -> Party:
    """The mailbox owner: a clinician whose address derives from the account name."""
    name, _ = texts.CLINICIANS[ctx.key("owner") % len(texts.CLINICIANS)]
    local = "".join(c if c.isalnum() or c in ".-" else "-" for c in ctx.account.lower())
    return party(name, f"{local}@practice.example.org", 1)


class MailSource:
    """Which message sits at mailbox index ``i``: canary, shared or the mailbox's own."""

    def __init__(self, ctx: TapContext, owner: Party) -> None:
        people = self.people = People(ctx.seed)
        self._parties: dict[object, Party] = {}
        self.owner = owner
        self.own = MailPools(ctx.key("mail"), people, owner)
        team = party("Practice Team", TEAM_ADDRESS, 0)
        self.shared = MailPools(ctx.seed_key("shared-mail"), people, team)
        self.own_key = ctx.key("mail-index")
        self.shared_key = ctx.seed_key("shared-index")
        self.start, self.step = timeline(ctx.key("mail-time"), ctx.records)
        self.shared_start = timeline(ctx.seed_key("shared-time"), 0)[0]
        self.canary = self._canary(ctx)

    def _canary(self, ctx: TapContext) -> Mail:
        sender = party(canary.CANARY_NAME, canary.CANARY_EMAIL, 0, 0)
        text = f"Hi, this is {canary.CANARY_SENTENCE}\nPlease call me back.\n\nZebulon"
        subject = f"Intake follow-up: {canary.CANARY_NOTE}"
        return Mail(
            message_id=f"<canary.{ctx.seed_key('canary'):016x}@mail.example.org>",
            subject_header=subject, subject=subject, sender=sender, to=(self.owner,), cc=(),
            sent=self.shared_start - 3600, zone=0,
            body=make_body(text, random.Random(0)), outgoing=False,
        )

    def at(self, i: int) -> tuple[Mail, int]:
        """The message at index ``i`` and the index's own mixed bits (for presentation)."""
        h = mix64(self.own_key ^ i)
        if i == 0:
            return self.canary, h
        if i % SHARED_EVERY in (STAFF_SLOT, CLIENT_SLOT):
            return self._client_mail(i, h), h
        if i % SHARED_EVERY == SHARED_SLOT:
            k = i // SHARED_EVERY
            hs = mix64(self.shared_key ^ k)
            mid = f"<{hs:016x}.{k}@mail.practice.example.org>"
            sent = self.shared_start + k * SHARED_STEP + hs % 600
            return self.shared.mail(hs, mid, sent, (hs >> 4) % len(ZONES)), h
        sent = self.start + i * self.step + h % self.step
        zone = -1 if (h >> 50) % 40 == 0 else (h >> 4) % len(ZONES)
        return self.own.mail(h, self._message_id(h, i), sent, zone), h

    def _client_mail(self, i: int, h: int) -> Mail:
        """A staff-only thread about a client, or a message with a low-index client."""
        k = i // SHARED_EVERY
        person = self.people.get(CLIENT_CYCLE[k % len(CLIENT_CYCLE)])
        base = self.own.mail(h, self._message_id(h, i), self.start + i * self.step + h % self.step,
                             (h >> 4) % len(ZONES))
        if i % SHARED_EVERY == STAFF_SLOT:
            colleague = self._keep(STAFF, lambda: party(*STAFF, 1))
            subject = f"Re: {person.given} {person.family} - schedule change"
            return Mail(base.message_id, subject, subject, self.owner, (colleague,), (), base.sent,
                        base.zone, base.body, True)
        address = person.email
        if person.index == GMAIL_CLIENT:
            address = gmail_variant(person, k)
        client = self._keep((person.index, k % 4, address),
                            lambda: person_party(person, k % 4, address))
        outgoing = k % 2 == 1
        sender, to = (self.owner, (client,)) if outgoing else (client, (self.owner,))
        return Mail(base.message_id, base.subject_header, base.subject, sender, to, (), base.sent,
                    base.zone, base.body, outgoing)

    def _keep(self, key: object, make: Callable[[], Party]) -> Party:
        """One long-lived Party per key: the taps cache header renderings by ``id(party)``."""
        found = self._parties.get(key)
        if found is None:
            found = self._parties[key] = make()
        return found

    @staticmethod
    def _message_id(h: int, i: int) -> str | None:
        style = (h >> 44) % 40
        if style == 0:
            return None
        if style < 20:
            return f"<CA+{h:016x}{i:x}@mail.gmail.com>"
        if style < 32:
            return f"<{h:x}.{i}@example.org>"
        return f"<BY5PR{i:06d}{h % 99999:05d}@BY5PR.namprd.prod.outlook.com>"
