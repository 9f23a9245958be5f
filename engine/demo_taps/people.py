"""The practice's synthetic clients, shared by every demo tap for the same seed.

Client ``j`` is the same person (name, birth date, email, phone, address) in Dataverse,
QuickBooks, Sheets and the mailboxes, so the later matching and deduplication stages have
real cross-source overlaps to find. Client 0 is always the canary patient. Names come from a
seeded permutation of given x family names, so the first 4,000-odd clients have unique names
(QuickBooks requires a unique ``DisplayName``); later names repeat, as they do in life, and
only the email gets a numeric suffix.

A few low indexes are identity-resolution traps, the same in every tap (``TRAPS``): a family
sharing one e-mail address, two clients with one name and different birth dates, a Gmail
client, a client who gives only a phone number, and a QuickBooks customer that is no client.
"""

from __future__ import annotations

import math
import random
import unicodedata
from dataclasses import dataclass, replace
from datetime import date

from engine.demo_taps import canary
from engine.demo_taps.common import derive, mix64, ordinal_date

GIVEN = (
    "Amara", "Benedikt", "Chiara", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ignacio",
    "Jolene", "Kwame", "Leilani", "Mateo", "Nadia", "Oluwaseun", "Priya", "Quentin",
    "Rosalind", "Santiago", "Thandiwe", "Ulrich", "Valentina", "Wendell", "Xiomara", "Yusuf",
    "Zoë", "Anneliese", "Bartholomew", "Céline", "Desmond", "Esperanza", "Fionnuala",
    "Gideon", "Hiroko", "Isidore", "Józef", "Kalani", "Lucía", "Marisol", "Niamh", "Octavia",
    "Percival", "Raphaël", "Saoirse", "Tobias", "Ulla", "Vikram", "Winifred", "Ximena",
    "Yolanda", "Zainab", "Agnieszka", "Bastien", "Consuelo", "Dagny", "Émile", "Florentyna",
    "Gwendolyn", "Horatio", "Imogen", "Jasper", "Kirsi", "Leopold", "Mireille",
)
FAMILY = (
    "Abernathy", "Bellweather", "Castellanos", "Dubrovsky", "Eriksdóttir", "Fairweather",
    "Gallagher", "Haverford", "Ibarra", "Jankowski", "Kowalczyk", "Lindqvist", "Mbeki",
    "Nakamura-Reyes", "O'Donnell", "Pemberton", "Quispe", "Rasmussen", "Szabó", "Thistlewood",
    "Umarov", "Vasquez-Hale", "Whitcombe", "Xu", "Yamaguchi", "Zielinski", "Achterberg",
    "Brannigan", "Cavendish", "Delacroix", "Eastwood", "Fitzgerald", "Grünewald", "Halvorsen",
    "Iwu", "Jovanović", "Kettleborough", "Lachance", "Muñoz", "Nwachukwu", "Oyelaran",
    "Papadakis", "Quarterman", "Rothschild", "Sandoval", "Tanaka", "Underhill", "Villanueva",
    "Wainwright", "Yilmaz", "Zamora", "Ashdown", "Blackwood", "Corrigan", "Doe",
    "Featherstone", "Goldberg", "Hollingsworth", "Ingram", "Juarez", "Kaczmarek", "Lowell",
    "Marchetti", "Nørgaard",
)
STREETS = (
    "Maple Avenue", "Cedar Court", "Harbor View Road", "Old Mill Lane", "Juniper Street",
    "Willow Bend Drive", "Orchard Way", "Lighthouse Terrace", "Quarry Hill Road",
    "Sycamore Place", "Foxglove Close", "Riverside Parkway", "Chestnut Row", "Beacon Street",
    "Heron Pond Circle", "Magnolia Boulevard",
)
CITIES = (
    ("Springfield", "IL", "62704"), ("Portland", "OR", "97205"), ("Asheville", "NC", "28801"),
    ("Burlington", "VT", "05401"), ("Madison", "WI", "53703"), ("Santa Fe", "NM", "87501"),
    ("Boise", "ID", "83702"), ("Ann Arbor", "MI", "48104"), ("Savannah", "GA", "31401"),
    ("Duluth", "MN", "55802"), ("Tacoma", "WA", "98402"), ("Providence", "RI", "02903"),
)
AREA_CODES = ("212", "312", "415", "503", "617", "720", "802", "919", "505", "208")
DOMAINS = ("example.org", "example.com", "example.net", "mail.example.com")
_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "'": "", " ": "", "-": ""})
_DOB_FIRST = date(1940, 1, 1).toordinal()
_DOB_SPAN = date(2014, 12, 31).toordinal() - _DOB_FIRST


def ascii_fold(text: str) -> str:
    """ASCII email local part: ``Zoë`` -> ``zoe``, ``O'Donnell`` -> ``odonnell``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return decomposed.encode("ascii", "ignore").decode("ascii").lower()


@dataclass(frozen=True, slots=True)
class Person:
    """One synthetic client of the practice (all fields PHI in a real deployment)."""

    index: int
    given: str
    family: str
    email: str
    area: str
    line: str
    birth_date: str
    street: str
    city: str
    state: str
    postal: str

    @property
    def full(self) -> str:
        """``Given Family``."""
        return f"{self.given} {self.family}"

    def phone(self, style: int) -> str:
        """The phone number as different systems format it (0-3)."""
        if style == 0:
            return f"({self.area}) 555-{self.line}"
        if style == 1:
            return f"{self.area}-555-{self.line}"
        if style == 2:
            return f"+1 {self.area} 555 {self.line}"
        return f"{self.area}.555.{self.line}"


CANARY_PERSON = Person(
    index=0,
    given=canary.CANARY_GIVEN_NAME,
    family=canary.CANARY_FAMILY_NAME,
    email=canary.CANARY_EMAIL,
    area=canary.CANARY_PHONE_AREA,
    line=canary.CANARY_PHONE_LINE,
    birth_date=canary.CANARY_BIRTH_DATE,
    street=canary.CANARY_ADDRESS,
    city=canary.CANARY_CITY,
    state=canary.CANARY_STATE,
    postal=canary.CANARY_POSTAL,
)

FAMILY_OF = {3: 2}
"""Client 3 is client 2's family: same family name, home and e-mail address (shared)."""
NAME_TWIN_OF = {5: 4}
"""Client 5 has client 4's name, with another birth date, e-mail and phone."""
GMAIL_CLIENT = 6
"""Client 6 writes from a Gmail address; other systems hold it without dots or with a tag."""
PHONE_ONLY = 7
"""Client 7 gives the intake sheet and QuickBooks a phone number (one no other client has)
but no e-mail."""
NON_CLIENT_CUSTOMER = 8
"""QuickBooks customer 8 is an EAP company that pays for sessions: no client contact."""
TRAPS = {"family": FAMILY_OF, "name_twin": NAME_TWIN_OF, "gmail": GMAIL_CLIENT,
         "phone_only": PHONE_ONLY, "non_client_customer": NON_CLIENT_CUSTOMER}
"""Every identity trap of the demo, for tests and docs/clients.md."""


def gmail_variant(person: Person, style: int) -> str:
    """The Gmail client's address as other systems write it: no dots, a ``+tag``, googlemail."""
    local, _, _ = person.email.partition("@")
    if style % 3 == 0:
        return local.replace(".", "").title() + "+intake@gmail.com"
    if style % 3 == 1:
        return local + "@googlemail.com"
    return local.replace(".", "") + "@gmail.com"


_GIVEN_ASCII = tuple(ascii_fold(g) for g in GIVEN)
_FAMILY_ASCII = tuple(ascii_fold(f) for f in FAMILY)


class People:
    """Client ``j`` of the practice for one seed (pure function of ``seed`` and ``j``)."""

    def __init__(self, seed: int) -> None:
        self._key = derive("people", seed)
        self._combos = self.unique_names = len(GIVEN) * len(FAMILY)
        mult = (self._key % self._combos) | 1
        while math.gcd(mult, self._combos) != 1:
            mult += 2
        self._mult = mult
        self._shift = (self._key >> 24) % self._combos
        rng = random.Random(self._key)
        self._mix_g = [rng.randrange(len(GIVEN)) for _ in FAMILY]
        self._mix_f = [rng.randrange(len(FAMILY)) for _ in GIVEN]

    def get(self, j: int) -> Person:
        """Client ``j`` (0 is the canary patient; low indexes carry the traps)."""
        if j == 0:
            return CANARY_PERSON
        person = self._get(j)
        if j in FAMILY_OF:
            head = self._get(FAMILY_OF[j])
            return replace(person, family=head.family, email=head.email, street=head.street,
                           city=head.city, state=head.state, postal=head.postal)
        if j in NAME_TWIN_OF:
            twin = self._get(NAME_TWIN_OF[j])
            local, _, domain = person.email.partition("@")
            return replace(person, given=twin.given, family=twin.family,
                           email=f"{ascii_fold(twin.given)}.{ascii_fold(twin.family)}.{j}@{domain}")
        if j == GMAIL_CLIENT:
            local = person.email.partition("@")[0]
            return replace(person, email=f"{local}@gmail.com")
        if j == PHONE_ONLY:  # a line no other client has (theirs are 555-01xx): the phone decides
            return replace(person, line="0242")
        return person

    def _get(self, j: int) -> Person:
        h = mix64(self._key ^ j)
        p = (j * self._mult + self._shift) % self._combos
        # Two Feistel-style rounds over (given, family): still a bijection, no visible stride.
        g0, f0 = p % len(GIVEN), p // len(GIVEN)
        g = (g0 + self._mix_g[f0]) % len(GIVEN)
        f = (f0 + self._mix_f[g]) % len(FAMILY)
        suffix = "" if j < self._combos else str(j // self._combos + 1)
        city, state, postal = CITIES[(h >> 12) % len(CITIES)]
        return Person(
            index=j,
            given=GIVEN[g],
            family=FAMILY[f],
            email=f"{_GIVEN_ASCII[g]}.{_FAMILY_ASCII[f]}{suffix}@{DOMAINS[h % len(DOMAINS)]}",
            area=AREA_CODES[(h >> 4) % len(AREA_CODES)],
            line=f"01{(h >> 8) % 100:02d}",
            birth_date=ordinal_date(_DOB_FIRST + (h >> 20) % _DOB_SPAN),
            street=f"{(h >> 36) % 9800 + 12} {STREETS[(h >> 16) % len(STREETS)]}",
            city=city,
            state=state,
            postal=postal,
        )
