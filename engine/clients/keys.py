"""Normalised identity keys: e-mail addresses, phone numbers, name plus birth date.

A key is a short string ``kind:value`` so keys of every kind share one table and one
index. Normalisation is deliberately conservative: it only folds differences that cannot
change who is meant (ASCII letter case; dots and ``+tags`` in Gmail addresses, where Google itself
ignores them; the many ways to write one phone number). Anything it cannot read gives no
key, never a guess. Functions here are pure (no clock, no I/O), so a run is reproducible.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers

GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
"""Domains where Google ignores dots and ``+tags`` in the local part (the default)."""

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")
_NAME_DROP = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")
_LATIN_LETTERS = str.maketrans({"ø": "o", "đ": "d", "ð": "d", "ł": "l", "ħ": "h", "ŧ": "t", "ı": "i",
                                "æ": "ae", "œ": "oe", "þ": "th"})
"""Latin letters that no Unicode decomposition takes apart but that people write both ways
(``Øberg`` / ``Oberg``, ``Łukasz`` / ``Lukasz``, ``Ærø`` / ``Aero``), after case folding."""

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

KEY_KINDS = ("email", "phone", "name_dob")
"""The kinds of identity key, strongest first after source references."""


def address_case(text: str) -> str:
    """An address in the one spelling keys compare: ASCII letters lower-cased, nothing else.

    Only ASCII case: full Unicode case folding joins addresses that are not one mailbox
    (``straße.de`` and ``strasse.de`` are two IDNA2008 domains; the long s ``ſ`` folds to
    ``s``), and so would normalisation (the Kelvin sign is canonically ``K``): spoofing made
    easy, and a link by a guessed address puts one person's mail in another's chart. A
    non-ASCII address spelt two ways is two keys: no link, never a wrong one."""
    return text.translate(_ASCII_LOWER)


def email_address(raw: object) -> str | None:
    """A plain address: trimmed, ASCII case-folded (:func:`address_case`), without ``<>`` or
    ``mailto:``; None if not one."""
    if not isinstance(raw, str):
        return None
    text = raw.strip().strip("<>").strip()
    if text.lower().startswith("mailto:"):  # mailto:<a@b> as well as <mailto:a@b>
        text = text[7:].strip().strip("<>").strip()
    text = address_case(text)
    return text if _EMAIL.match(text) else None


def email_key(raw: object, gmail_domains: Iterable[str] = GMAIL_DOMAINS) -> str | None:
    """The e-mail key: ``email:local@domain`` with Gmail dots and ``+tags`` removed.

    Only for the Gmail domains: elsewhere ``jane.doe`` and ``janedoe`` may be two people,
    and ``+`` may be a real character of the mailbox name.
    """
    address = email_address(raw)
    if address is None:
        return None
    local, _, domain = address.rpartition("@")
    if domain in gmail_domains:
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com" if domain == "googlemail.com" else domain
        if not local:
            return None
    return f"email:{local}@{domain}"


def is_own(address: str, patterns: Iterable[str]) -> bool:
    """True when a (normalised) address matches one of the practice's own patterns."""
    return any(fnmatch.fnmatchcase(address, address_case(p)) for p in patterns)


def own_patterns(patterns: Iterable[str], gmail_domains: Iterable[str] = GMAIL_DOMAINS) -> tuple[str, ...]:
    """The practice's address patterns, each also in its Gmail-folded form.

    Google delivers ``dr.smith+intake@gmail.com`` to ``drsmith@gmail.com``: an own address
    is matched on the folded form too (:func:`folded`), whichever way the pattern is written,
    so a dotted or tagged spelling of the practice's mailbox never becomes a client key.
    """
    out: list[str] = []
    for p in patterns:
        out.append(address_case(p))
        key = email_key(p, gmail_domains) if not any(c in p for c in "*?[") else None
        if key is not None:
            out.append(key_value(key))
    return tuple(dict.fromkeys(out))


def folded(address: str, gmail_domains: Iterable[str] = GMAIL_DOMAINS) -> str:
    """A normalised address as its e-mail key spells it (Gmail dots and +tags dropped)."""
    key = email_key(address, gmail_domains)
    return key_value(key) if key is not None else address


def phone_key(raw: object, region: str) -> str | None:
    """The phone key ``phone:+E164`` (``phone:+E164;ext=12`` with an extension, RFC 3966's
    spelling); numbers without a country code use ``region``.

    A number must be complete (not a local-only fragment such as ``555-0123``) and valid to
    be a key. ``212-555-0177 ext. 12``, ``x12`` and ``;ext=12`` are one key; the main line
    without an extension is another.
    """
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE or not phonenumbers.is_valid_number(number):
        return None  # a fragment, or a number no one can have (000-000-0000, 123-456-7890)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # an office line's extensions reach different people: the extension is part of the key
    return f"phone:{e164};ext={number.extension}" if number.extension else f"phone:{e164}"


def name_text(raw: object) -> str | None:
    """A name folded for comparison: ``Doe, Jane`` and ``jane  DOE`` both give ``jane doe``.

    Optional accents (Latin, Greek, Cyrillic but the breve) and punctuation are dropped and
    case folded, ``ø ł đ ð ħ ŧ ı æ œ þ`` written as ASCII; a single comma swaps
    ``Family, Given`` into ``Given Family``. Token order is otherwise kept.
    """
    if not isinstance(raw, str):
        return None
    return _folded_name(raw)


@lru_cache(maxsize=1 << 16)
def _folded_name(raw: str) -> str | None:
    """`name_text` of a string, remembered: the same names come back on every mail and row."""
    text = raw.strip()
    if text.count(",") == 1:
        family, given = (p.strip() for p in text.split(","))
        text = f"{given} {family}"
    text = _drop_punctuation(_drop_latin_accents(text).casefold().translate(_LATIN_LETTERS))
    return _SPACES.sub(" ", text).strip() or None


def forget_names() -> None:
    """Empty the folded-name memo (up to 65,536 names and their foldings: about 20,000 at
    1,000,000 demo records), which the project task needs only while it reads; with the
    address and phone memos that was 6 MiB of its peak (docs/performance.md)."""
    _folded_name.cache_clear()


def _drop_punctuation(text: str) -> str:
    """Punctuation and symbols become spaces; letters, digits and the marks that remain after
    :func:`_drop_latin_accents` stay. ``[^\\w\\s]`` alone took every combining mark for
    punctuation: the vowel signs of Devanagari, Thai, Bengali, Tamil... became spaces, so
    ``अमित`` and ``अमृत`` (twins Amit and Amrit) both gave ``अम त`` and one twin's intake row,
    invoices and mail went into the other's chart. Invisible format characters (zero-width
    joiners, bidi controls) are dropped: a name typed with or without them is one name."""
    if text.isascii():
        return _NAME_DROP.sub(" ", text)
    out = []
    after_letter = False  # a mark belongs to the letter before it; alone (after an emoji,
    for c in text:        # a space: a variation selector, a keycap) it is no part of a name
        if c.isalnum() or c == "_":
            out.append(c)
            after_letter = True
            continue
        cat = unicodedata.category(c)
        if cat[0] == "M":
            if after_letter and cat != "Me" and not ("\ufe00" <= c <= "\ufe0f" or "\U000e0100" <= c <= "\U000e01ef"):
                out.append(c)
            continue
        if cat != "Cf":
            out.append(c if c.isspace() else " ")
            after_letter = False
    return "".join(out)


def legacy_fold(folded: str) -> str:
    """A folded name as versions before the marks were kept folded it (every combining mark
    a space): what pins stored then hold, compared once and stored anew."""
    if folded.isascii():
        return folded
    return _SPACES.sub(" ", "".join(" " if unicodedata.category(c)[0] == "M" else c for c in folded)).strip()


def _drop_latin_accents(text: str) -> str:
    """``José`` -> ``Jose``, ``Γιώργος`` -> ``Γιωργος``, ``Алёна`` -> ``Алена``: the accents
    people write or leave out are dropped after Latin, Greek and Cyrillic letters, except the
    Cyrillic breve (``й`` is not ``и``). After letters of other scripts a mark makes another
    letter (Japanese ``ガ`` is not ``カ``; a Devanagari vowel sign is part of the name), so it
    stays, except after Hebrew and Arabic letters, whose vowel points are mostly left out; the
    text is recomposed (NFC) after the compatibility decomposition.
    """
    if text.isascii():  # no accents, no compatibility forms: nothing to drop
        return text
    out: list[str] = []
    script = ""
    for c in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(c):
            if script in ("latin-greek", "hebrew-arabic") or (script == "cyrillic" and c != "\u0306"):
                continue
        else:
            script = _script(c)
        out.append(c)
    return unicodedata.normalize("NFC", "".join(out))


def _script(c: str) -> str:
    """Where accents are optional: ``latin-greek``, ``cyrillic``, ``hebrew-arabic`` (their
    vowel points, niqqud and harakat, are mostly left out: ``דָּוִד`` is ``דוד``, ``محمّد`` is
    ``محمد``), or ``other``."""
    if (c < "\u02b0" or "\u1d00" <= c <= "\u1fff" or "\u0370" <= c <= "\u03ff"
            or "\u2c60" <= c <= "\u2c7f" or "\ua720" <= c <= "\ua7ff" or "\uab30" <= c <= "\uab6f"):
        return "latin-greek"  # Latin (IPA letters of African alphabets too: Kɔ̃fi), Greek
    if "\u0400" <= c <= "\u04ff":
        return "cyrillic"
    if "\u0590" <= c <= "\u06ff" or "\u0750" <= c <= "\u077f" or "\u08a0" <= c <= "\u08ff" or "\ufb1d" <= c <= "\ufdff":
        return "hebrew-arabic"
    return "other"


def birth_date(raw: object) -> str | None:
    """A birth date as ``YYYY-MM-DD`` when the value starts with one, else None."""
    if not isinstance(raw, str) or len(raw) < 10:
        return None
    head = raw[:10]
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", head) and head[5:7] != "00" and head[8:] != "00":
        return head
    return None


_APOSTROPHES = re.compile("['\u2019\u02bc\u2018`]")
"""Apostrophes inside a name (``O'Neill``, ``D’Angelo``), which the key drops rather than
turning them into a space: ``O'Neill`` and ``ONeill`` are one spelling of one name."""


def name_dob_key(name: object, dob: object) -> str | None:
    """The key ``name_dob:given family|YYYY-MM-DD``; None unless both parts are present.

    The name is :func:`name_text`'s with its apostrophes dropped first (not made a space):
    ``Siobhán O'Neill`` and ``Siobhan ONeill`` are one key (``siobhan oneill``), as the name
    rule already takes them for one name. Only the apostrophe goes, every letter stays in
    its order, so no two names that differ in a letter, or in where a space stands
    (``O Neill``), become one key."""
    n, d = key_name(name), birth_date(dob)
    if n is None or d is None:
        return None
    return f"name_dob:{n}|{d}"


def key_name(name: object) -> str | None:
    """A name as a ``name_dob:`` key writes it (:func:`name_dob_key`: apostrophes dropped)."""
    return name_text(_APOSTROPHES.sub("", name) if isinstance(name, str) else name)


def name_dob_name(key: str) -> str:
    """The folded name of a ``name_dob:`` key."""
    return key[len("name_dob:"):].rpartition("|")[0]


def phone_ext(key: str) -> str | None:
    """The extension of a phone key (``phone:+12125550177;ext=12`` -> ``12``), else None."""
    return key.partition(";ext=")[2] or None if key.startswith("phone:") else None


def phone_line(key: str) -> str:
    """A phone key without its extension: the office's line."""
    return key.partition(";ext=")[0]


def name_dob_date(key: str) -> str:
    """The birth date of a ``name_dob:`` key."""
    return key.rpartition("|")[2]


def key_kind(key: str) -> str:
    """``email``, ``phone`` or ``name_dob`` for a key."""
    return key.split(":", 1)[0]


def key_value(key: str) -> str:
    """The value part of a key (PHI: for charts and the terminal only)."""
    return key.split(":", 1)[1]
