"""A client's record as the resolver reads it: its card, and the identity its pin keeps.

Split from :mod:`engine.clients.resolve` (which links documents to clients) because these
say what a client *is*, apart from any linking: the card read from the record that defines
the client (names, birth date, e-mails, phones, addresses), and :func:`client_identity`, the
folded name and birth date an override's pin (``client:<id>`` in ``client_override_pins``)
holds, so a sheet row's id that now names another person is never merged or linked.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from engine.clients import keys as K
from engine.clients.model import Card, Client
from engine.clients.rules import LinkRule, first_text, texts, values

CLIENT_PIN = "client:"
"""The ``document`` column of a client's pin in ``client_override_pins``."""


def client_identity(client: Client, *, legacy: bool = False) -> str:
    """Who a client's record is: the folded name and the birth date (sha256 hex). An e-mail or
    phone may change in the record; another person's row gives another name or birth date.
    ``legacy``: the name folded as before combining marks were kept (pins stored then)."""
    name = K.name_text(client.card.name)
    if legacy and name is not None:
        name = K.legacy_fold(name)
    return hashlib.sha256(orjson.dumps([name, client.card.birth_date])).hexdigest()


def card_of(doc: dict[str, Any], rule: LinkRule) -> Card:
    """A client's card from the record that defines it: names, birth date, e-mails, phones,
    addresses."""
    comps = values(doc, ("name.components[]",))
    given = next((c.get("value") for c in comps if isinstance(c, dict) and c.get("kind") == "given"), None)
    family = next((c.get("value") for c in comps if isinstance(c, dict) and c.get("kind") == "surname"), None)
    return Card(
        name=first_text(doc, rule.names), given=given if isinstance(given, str) else None,
        family=family if isinstance(family, str) else None,
        birth_date=K.birth_date(first_text(doc, rule.births)),
        emails=texts(doc, rule.emails), phones=texts(doc, rule.phones),
        addresses=texts(doc, ("addresses.*.full",)),
    )
