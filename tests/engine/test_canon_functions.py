"""The helper functions registered into every transform (engine/canon/functions.py).

Each tricky case of SOURCES.md §4 items 1-5 (multipart MIME, base64url, header case, missing
fields, time zones) is checked twice: by calling the Python function directly, and through a
real jsonatapy expression with the functions registered, the way transforms call them (so
argument marshalling, undefined arguments and null results are covered too).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
from typing import Any

import jsonatapy
import orjson
import pytest

from engine.canon import functions as f
from engine.canon.compiled import compile_expression
from engine.canon.functions import FUNCTIONS


def b64url(data: bytes | str, charset: str = "utf-8", pad: bool = False) -> str:
    raw = data.encode(charset) if isinstance(data, str) else data
    text = base64.urlsafe_b64encode(raw).decode("ascii")
    return text if pad else text.rstrip("=")


def h(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def leaf(part_id: str, mime: str, data: bytes | str, charset: str = "utf-8",
         **extra: Any) -> dict[str, Any]:
    return {"partId": part_id, "mimeType": mime, "filename": "",
            "headers": [h("Content-Type", f"{mime}; charset={charset}")],
            "body": {"size": 1, "data": b64url(data, charset)}, **extra}


def arity(func: Any) -> int:
    """How many positional arguments a helper requires."""
    return sum(1 for p in inspect.signature(func).parameters.values() if p.default is p.empty)


def run(expr: str, data: Any = None, **bindings: Any) -> Any:
    """Evaluate a JSONata expression with every helper registered."""
    compiled = compile_expression(expr)
    return compiled.evaluate(data if data is not None else {}, bindings or None)


# --------------------------------------------------------------------------- registration


def test_every_helper_registers_without_colliding_with_builtins() -> None:
    expr = jsonatapy.compile("1")
    for name, func in FUNCTIONS.items():
        expr.register(name, func)  # raises ValueError on a built-in name
    assert {"mimeBody", "header", "headerAll", "addresses", "mailDate", "decodeWords", "msgId",
            "htmlToText", "millisToIso", "preview", "decimal", "e164"} <= set(FUNCTIONS)


@pytest.mark.parametrize("text", ["{'at': $now()}", "{'at': $millis()}", "$string($now('[Y0001]'))",
                                  "{'n': [1, 2].($millis())}"])
def test_a_transform_that_reads_the_clock_fails(text: str) -> None:
    """A reviewer's transform stamped `$now()` and `$millis()`: every canonize run wrote another
    file, and nothing said why the byte-identical promise broke."""
    with pytest.raises(ValueError, match="reads the clock"):
        compile_expression(text).evaluate({"x": 1})


def test_the_record_s_own_times_still_convert() -> None:
    got = compile_expression("{'a': $fromMillis(0), 'b': $toMillis('2020-01-01T00:00:00Z')}").evaluate({})
    assert got == {"a": "1970-01-01T00:00:00.000Z", "b": 1577836800000}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("odd", [None, "", 0, -1, 1.5, True, [], {}, [None], "\x00\ufffd", {"a": [1]}])
def test_helpers_never_raise_on_odd_input(name: str, odd: Any) -> None:
    func = FUNCTIONS[name]
    result = func(*[odd] * arity(func))
    orjson.dumps(result)  # and the result is JSON


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_helpers_accept_undefined_arguments_through_jsonata(name: str) -> None:
    """An undefined path arrives as None; the helper answers without failing the record."""
    args = ", ".join(["nothing.here"] * arity(FUNCTIONS[name]))
    run(f"${name}({args})")


# --------------------------------------------------------------------------- 1. multipart MIME


def test_single_part_body_lives_in_payload_body_data() -> None:
    payload = {"partId": "", "mimeType": "text/plain", "filename": "",
               "headers": [h("Content-Type", "text/plain; charset=UTF-8")],
               "body": {"size": 12, "data": b64url("Hello there\r\n")}}
    out = f.mime_body(payload)
    assert out["text"] == "Hello there"  # CRLF -> LF, trailing line ends trimmed
    assert out["html"] is None and out["textPartId"] == "" and not out["encodingProblem"]
    assert out["attachments"] == []


def test_alternative_prefers_plain_and_keeps_html() -> None:
    payload = {"partId": "", "mimeType": "multipart/alternative", "headers": [],
               "parts": [leaf("0", "text/plain", "plain words"),
                         leaf("1", "text/html", "<p>html <b>words</b></p>")]}
    out = f.mime_body(payload)
    assert out["text"] == "plain words" and out["textPartId"] == "0"
    assert out["html"] == "<p>html <b>words</b></p>" and out["htmlPartId"] == "1"
    assert out["textFromHtml"] is False


def test_html_only_falls_back_to_text_from_html() -> None:
    payload = leaf("", "text/html", "<html><head><title>t</title><style>p{}</style></head>"
                   "<body><p>Dear&nbsp;client,</p><div>line&amp;two<br>three</div></body></html>")
    out = f.mime_body(payload)
    assert out["textFromHtml"] is True and out["textPartId"] == ""
    assert out["text"] == "Dear client,\n\nline&two\nthree"


def nested_message() -> dict[str, Any]:
    alternative = {"partId": "0.0", "mimeType": "multipart/alternative", "headers": [],
                   "parts": [leaf("0.0.0", "text/plain", "body text"),
                             leaf("0.0.1", "text/html", "<p>body html</p>")]}
    related = {"partId": "0", "mimeType": "multipart/related", "headers": [],
               "parts": [alternative,
                         {"partId": "0.1", "mimeType": "image/png", "filename": "logo.png",
                          "headers": [h("Content-Disposition", "inline"), h("Content-ID", "<logo@x>")],
                          "body": {"attachmentId": "ANGjdJ_logo", "size": 300}}]}
    pdf = {"partId": "1", "mimeType": "application/pdf", "filename": "bill.pdf",
           "headers": [h("content-disposition", 'attachment; filename="bill.pdf"')],
           "body": {"attachmentId": "ANGjdJ_pdf", "size": 9000}}
    return {"partId": "", "mimeType": "multipart/mixed", "headers": [], "parts": [related, pdf]}


def test_mixed_wrapping_related_wrapping_alternative() -> None:
    out = f.mime_body(nested_message())
    assert out["text"] == "body text" and out["textPartId"] == "0.0.0"
    assert out["html"] == "<p>body html</p>" and out["htmlPartId"] == "0.0.1"
    assert out["attachments"] == [
        {"partId": "0.1", "filename": "logo.png", "mimeType": "image/png", "size": 300,
         "attachmentId": "ANGjdJ_logo", "disposition": "inline", "cid": "logo@x"},
        {"partId": "1", "filename": "bill.pdf", "mimeType": "application/pdf", "size": 9000,
         "attachmentId": "ANGjdJ_pdf", "disposition": "attachment", "cid": None},
    ]


def test_forwarded_message_rfc822_is_walked() -> None:
    inner = {"partId": "1", "mimeType": "message/rfc822", "headers": [],
             "parts": [{"partId": "1.0", "mimeType": "multipart/alternative", "headers": [],
                        "parts": [leaf("1.0.0", "text/plain", "forwarded words"),
                                  leaf("1.0.1", "text/html", "<i>forwarded</i>")]}]}
    payload = {"partId": "", "mimeType": "multipart/mixed", "headers": [],
               "parts": [leaf("0", "text/plain", "FYI\n"), inner]}
    out = f.mime_body(payload)
    assert out["text"] == "FYI\n\nforwarded words"
    assert out["html"] == "<i>forwarded</i>"
    assert out["attachments"] == []


def test_rfc822_kept_as_a_blob_is_an_attachment() -> None:
    blob = {"partId": "1", "mimeType": "message/rfc822", "filename": "old.eml", "headers": [],
            "body": {"attachmentId": "ANG_eml", "size": 4000}}
    out = f.mime_body({"mimeType": "multipart/mixed", "parts": [leaf("0", "text/plain", "x"), blob]})
    assert [a["attachmentId"] for a in out["attachments"]] == ["ANG_eml"]


def test_mime_body_through_jsonata() -> None:
    out = run("$mimeBody(payload)", {"payload": nested_message()})
    assert out["text"] == "body text" and len(out["attachments"]) == 2
    assert run("$mimeBody(payload).text", {}) is None


def test_mime_depth_is_bounded() -> None:
    part: dict[str, Any] = leaf("x", "text/plain", "deep")
    for _ in range(200):
        part = {"mimeType": "multipart/mixed", "parts": [part]}
    assert f.mime_body(part)["text"] is None


# --------------------------------------------------------------------------- 2. base64url, charsets


@pytest.mark.parametrize("text", ["a", "ab", "abc", "abcd", "ünï", "🙂?>~"])
def test_base64url_with_and_without_padding(text: str) -> None:
    raw = text.encode()
    assert f.b64url_bytes(b64url(raw)) == raw
    assert f.b64url_bytes(b64url(raw, pad=True)) == raw
    assert f.b64url_bytes(base64.b64encode(raw).decode()) == raw  # standard alphabet too


def test_base64url_alphabet_dash_underscore() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF])
    assert b64url(raw) == "-_-_"
    assert f.b64url_bytes("-_-_") == raw


def test_invalid_base64_flags_an_encoding_problem() -> None:
    out = f.mime_body({"mimeType": "text/plain", "body": {"data": "abcde"}})
    assert out["text"] is None and out["encodingProblem"] is True


def test_iso_8859_1_body_decoded_with_its_charset() -> None:
    latin = "Merci pour la séance à jeudi, Grünewald"
    part = {"mimeType": "text/plain", "headers": [h("content-type", "text/plain; CHARSET=\"ISO-8859-1\"")],
            "body": {"data": b64url(latin, "latin-1")}}
    out = f.mime_body(part)
    assert out["text"] == latin and out["encodingProblem"] is False
    # mislabelled windows-1252 smart quotes, as mail clients send them
    smart = {"mimeType": "text/plain", "headers": [h("Content-Type", "text/plain; charset=iso-8859-1")],
             "body": {"data": b64url(b"\x93quoted\x94")}}
    assert f.mime_body(smart)["text"] == "“quoted”"


def test_invalid_utf8_is_replaced_and_flagged() -> None:
    part = {"mimeType": "text/plain", "headers": [h("Content-Type", "text/plain; charset=utf-8")],
            "body": {"data": b64url(b"ok \xff\xfe end")}}
    out = f.mime_body(part)
    assert out["text"] == "ok \ufffd\ufffd end" and out["encodingProblem"] is True


def test_unknown_charset_falls_back_to_utf8_and_flags() -> None:
    text, problem = f.decode_bytes("café".encode(), "x-klingon")
    assert (text, problem) == ("café", True)


@pytest.mark.parametrize(("label", "text", "codec"), [
    ("gb2312", "心理咨询 預約", "gbk"),  # GBK text under its usual label (gb2312 alone lacks 預)
    ("iso-8859-8-i", "שלום", "iso-8859-8"),
    ("ISO-8859-6-I", "مرحبا", "iso-8859-6"),
])
def test_labels_mail_clients_send_decode_as_they_mean(label: str, text: str, codec: str) -> None:
    """GBK under `gb2312` and Hebrew under `iso-8859-8-i` came out as U+FFFD: the text was lost."""
    assert f.decode_bytes(text.encode(codec), label) == (text, False)


def test_a_few_bad_bytes_keep_the_declared_charset_for_the_rest() -> None:
    text, problem = f.decode_bytes("Grüße ".encode("latin-1") + b"\x81", "windows-1252")
    assert text == "Grüße \ufffd" and problem is True


@pytest.mark.parametrize("label", ["us-ascii", "windows-1252", "shift_jis"])
def test_utf8_under_another_label_is_read_as_utf8(label: str) -> None:
    """A web form's mailer labels UTF-8 us-ascii: decoding in the label with U+FFFD garbled
    "Renée Müller" where the UTF-8 reading had it whole (still flagged)."""
    text = "Renée Müller — café Ý 日本"
    assert f.decode_bytes(text.encode(), label) == (text, True)


def test_an_rfc_2231_charset_parameter_is_read() -> None:
    part = {"mimeType": "text/plain", "headers": [h("Content-Type", "text/plain; charset*=iso-8859-1''")],
            "body": {"data": b64url("café", "latin-1")}}
    out = f.mime_body(part)
    assert out["text"] == "café" and out["encodingProblem"] is False


def test_missing_charset_means_utf8() -> None:
    assert f.decode_bytes("naïve".encode(), None) == ("naïve", False)


def test_charset_through_jsonata() -> None:
    payload = {"mimeType": "text/plain", "headers": [h("CONTENT-TYPE", "text/plain; charset=iso-8859-1")],
               "body": {"data": b64url("Grünewald", "latin-1")}}
    assert run("$mimeBody($).text", payload) == "Grünewald"


# --------------------------------------------------------------------------- 3. header case, RFC 2047, addresses


HEADERS = [h("Message-Id", "<a@b>"), h("CC", "x@y.org"), h("subject", "hi"), h("Received", "one"),
           h("received", "two")]


@pytest.mark.parametrize("name", ["Message-ID", "message-id", "MESSAGE-ID", "Message-Id"])
def test_header_lookup_is_case_insensitive(name: str) -> None:
    assert f.header(HEADERS, name) == "<a@b>"
    assert run("$header(payload.headers, $n)", {"payload": {"headers": HEADERS}}, n=name) == "<a@b>"


def test_header_all_and_map() -> None:
    assert f.header_all(HEADERS, "RECEIVED") == ["one", "two"]
    assert f.header_map(HEADERS)["cc"] == ["x@y.org"]
    assert run("$headerMap(h).`received`", {"h": HEADERS}) == ["one", "two"]
    assert run("$headerAll(h, 'Cc')", {"h": HEADERS}) == ["x@y.org"]
    assert f.header(HEADERS, "Date") is None and f.header_all(None, "Date") == []


def test_decode_words_rfc2047() -> None:
    assert f.decode_words("=?UTF-8?B?UsOpc3Vtw6k=?= du jour") == "Résumé du jour"
    assert f.decode_words("=?iso-8859-1?q?S=E9ance_de_mardi?=") == "Séance de mardi"
    assert f.decode_words("=?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?=") == "ab"
    assert f.decode_words("plain = ?not encoded?") == "plain = ?not encoded?"
    assert f.decode_words("=?bogus-charset?B?xx?=") == "=?bogus-charset?B?xx?="
    assert run("$decodeWords(s)", {"s": "=?utf-8?q?Caf=C3=A9?="}) == "Café"


def test_address_list_with_quoted_commas_and_encoded_names() -> None:
    text = ('"Doe, Jane" <Jane.Doe@Example.org>, =?UTF-8?Q?Jankowski=2C_J=C3=B3zef?= '
            "<jozef@example.com>, plain@example.org, undisclosed-recipients:;")
    expected = [{"name": "Doe, Jane", "email": "jane.doe@example.org"},
                {"name": "Jankowski, Józef", "email": "jozef@example.com"},
                {"name": None, "email": "plain@example.org"}]
    assert f.addresses(text) == expected
    assert run("$addresses(to)", {"to": text}) == expected


def test_address_unquoted_comma_is_glued_back() -> None:
    assert f.addresses("Okafor, Amina <amina@x.org>, b@y.org") == [
        {"name": "Okafor, Amina", "email": "amina@x.org"}, {"name": None, "email": "b@y.org"}]


def test_address_edge_cases() -> None:
    assert f.addresses(None) is None
    assert f.addresses("") == []
    assert f.addresses("undisclosed-recipients:;") == []
    assert f.addresses(["a@x.org", "b@y.org"]) == [{"name": None, "email": "a@x.org"},
                                                    {"name": None, "email": "b@y.org"}]
    assert f.addresses('"Folded\r\n Name" <f@x.org>') == [{"name": "Folded Name", "email": "f@x.org"}]


def test_an_address_list_yields_only_the_mailboxes_rfc_5322_names() -> None:
    """A display name that looks like an address is a name: the mail's only participant is the
    angle-addr's (the old parser made both senders, and the mail reached a client who never
    took part). Comments and quoted strings may hold anything; group names are dropped."""
    assert f.addresses("cy@example.com <stranger@elsewhere.org>") == [
        {"name": "cy@example.com", "email": "stranger@elsewhere.org"}]
    assert f.addresses("alice@x.org)<bob@y.org>") == [{"name": "alice@x.org)", "email": "bob@y.org"}]
    assert f.addresses("jane@client.com via list") == [{"name": None, "email": "jane@client.com via list"}]
    assert f.addresses('"a <b@c.org>, d@e.org" <real@x.org>') == [{"name": "a <b@c.org>, d@e.org",
                                                                   "email": "real@x.org"}]
    assert f.addresses("jane@x.org (Jane (J) Doe), b@c.org") == [
        {"name": "Jane (J) Doe", "email": "jane@x.org"}, {"name": None, "email": "b@c.org"}]
    assert f.addresses("Ann (the <x@y.org> boss) <ann@x.org>") == [{"name": "Ann", "email": "ann@x.org"}]
    # an encoded word is one atom of a name, whatever it holds: a malformed one with a "<"
    # inside made its bracketed text the sender
    assert f.addresses("=?utf-8?Q?Bob_<bob@roe.example>?= <ann@doe.example>") == [
        {"name": "Bob <bob@roe.example>", "email": "ann@doe.example"}]
    assert f.addresses("=?utf-8?Q?J=C3=BCrgen?= <j@x.org>, \x00z <z@x.org>") == [
        {"name": "Jürgen", "email": "j@x.org"}, {"name": "z", "email": "z@x.org"}]
    assert f.addresses("team: a@x.org, B@Y.org;, c@z.org") == [
        {"name": None, "email": "a@x.org"}, {"name": None, "email": "b@y.org"},
        {"name": None, "email": "c@z.org"}]
    assert f.addresses("<@r1.org,@r2.org:user@host.org>") == [{"name": None, "email": "user@host.org"}]
    assert f.addresses("\u212aim <\u212aIM@Example.com>") == [  # ASCII case only: no look-alike of kim@
        {"name": "\u212aim", "email": "\u212aim@example.com"}]


def test_msg_id() -> None:
    assert f.msg_id("  <A.B@Example.COM>  ") == ["A.B@Example.COM"]
    assert f.msg_id("<root@x>\r\n <mid@x> <leaf@x>") == ["root@x", "mid@x", "leaf@x"]
    assert f.msg_id("bare@id.example") == ["bare@id.example"]
    assert f.msg_id("") is None and f.msg_id(None) is None and f.msg_id("<>") is None
    assert run("$msgId(m)", {"m": "<a@b> <c@d>"}) == ["a@b", "c@d"]
    assert run("$msgId(nothing)") is None


# --------------------------------------------------------------------------- 4. missing fields, dedupe


def test_mail_key_prefers_the_message_id() -> None:
    assert f.mail_key(["  <CA+Xy@Mail.Gmail.com> "], None, None, None) == "ca+xy@mail.gmail.com"
    assert f.mail_key("<A@B>", None, None, None) == "a@b"


def test_mail_key_falls_back_to_a_hash_without_message_id() -> None:
    sender = [{"name": "Front Desk", "email": "FrontDesk@Practice.org"}]
    key = f.mail_key(None, sender, "2024-03-04T09:00:00-05:00", "  Hello   there ")
    digest = hashlib.sha256(orjson.dumps([["frontdesk@practice.org"], "2024-03-04T14:00:00Z",
                                          "Hello there"])).hexdigest()
    assert key == "sha256:" + digest
    # the same message seen elsewhere (UTC time, other casing) gets the same key
    assert f.mail_key([], [{"name": None, "email": "frontdesk@practice.org"}],
                      "2024-03-04T14:00:00Z", "Hello there") == key
    assert run("$mailKey(nothing, from, sent, subject)",
               {"from": sender, "sent": "2024-03-04T14:00:00Z", "subject": "Hello there"}) == key


def test_missing_date_and_message_id_through_jsonata() -> None:
    headers = [h("From", "a@b.org"), h("Subject", "x")]
    out = run('{"date": $mailDate($header(h, "Date")), "id": $msgId($header(h, "Message-ID"))}',
              {"h": headers})
    assert out == {"date": None, "id": None}


# --------------------------------------------------------------------------- 5. time zones


@pytest.mark.parametrize(("text", "utc", "offset"), [
    ("Mon, 4 Mar 2024 09:00:00 -0500", "2024-03-04T14:00:00Z", "-05:00"),
    ("Mon, 4 Mar 2024 09:00:00 EST", "2024-03-04T14:00:00Z", "-05:00"),
    ("Tue, 1 Jul 2003 10:52:37 -0700 (PDT)", "2003-07-01T17:52:37Z", "-07:00"),
    ("Mon, 4 Mar 2024 09:00:00 PDT", "2024-03-04T16:00:00Z", "-07:00"),
    ("Mon, 4 Mar 2024 09:00:00 +0000 (UTC)", "2024-03-04T09:00:00Z", "+00:00"),
    ("Mon, 4 Mar 2024 09:00:00 GMT", "2024-03-04T09:00:00Z", "+00:00"),
    ("4 Mar 2024 09:00 +0530", "2024-03-04T03:30:00Z", "+05:30"),
    ("Mon, 04 Mar 24 09:00:00 +0100", "2024-03-04T08:00:00Z", "+01:00"),
    ("Mon, 4 Mar 2024 09:00:00 -0000", "2024-03-04T09:00:00Z", "-00:00"),
    ("Mon, 4 Mar 2024 09:00:00 XYZ", "2024-03-04T09:00:00Z", "-00:00"),
    ("Mon,\r\n 4 Mar 2024 09:00:00 +0200", "2024-03-04T07:00:00Z", "+02:00"),
])
def test_mail_date_zones(text: str, utc: str, offset: str) -> None:
    out = f.mail_date(text)
    assert out is not None and out["utc"] == utc and out["offset"] == offset
    assert out["local"].endswith(offset)
    assert run("$mailDate(d)", {"d": text}) == out


@pytest.mark.parametrize("text", [None, "", "not a date", "Mon, 31 Feb 2024 09:00:00 +0000",
                                  "Mon, 4 Mar 2024 25:61:00 +0000"])
def test_mail_date_missing_or_malformed_is_null(text: str | None) -> None:
    assert f.mail_date(text) is None
    assert run("$mailDate(d)", {"d": text}) is None


def test_millis_to_iso() -> None:
    assert f.millis_to_iso("1709542800123") == "2024-03-04T09:00:00.123Z"
    assert f.millis_to_iso(1709542800000) == "2024-03-04T09:00:00Z"
    assert f.millis_to_iso("-1000") == "1969-12-31T23:59:59Z"
    assert f.millis_to_iso("12ab") is None and f.millis_to_iso(True) is None
    assert f.millis_to_iso(10**20) is None
    assert run("$millisToIso(internalDate)", {"internalDate": "1709542800123"}) == "2024-03-04T09:00:00.123Z"


def test_utc_normalises_offsets_and_keeps_dates() -> None:
    assert f.utc("2024-03-05T01:15:02-08:00") == "2024-03-05T09:15:02Z"
    assert f.utc("2024-03-05T09:15:02.1234567Z") == "2024-03-05T09:15:02.123Z"
    assert f.utc("2024-03-05T09:15:02") == "2024-03-05T09:15:02Z"
    assert f.utc("1954-05-16") == "1954-05-16"  # DateOnly: never shifted
    assert f.utc("yesterday") is None
    assert run("$utc(t)", {"t": "2022-09-04T07:55:01-05:00"}) == "2022-09-04T12:55:01Z"


def test_utc_reads_a_time_without_offset_in_the_zone_given() -> None:
    assert f.utc("2025-08-02T10:30:05", "America/New_York") == "2025-08-02T14:30:05Z"  # EDT
    assert f.utc("2025-01-02T10:30:05", "America/New_York") == "2025-01-02T15:30:05Z"  # EST
    assert f.utc("2025-11-02T01:30:00", "America/New_York") == "2025-11-02T05:30:00Z"  # the first 1:30
    assert f.utc("2025-08-02T10:30:05+02:00", "America/New_York") == "2025-08-02T08:30:05Z"  # its own offset
    assert f.utc("2025-08-02T10:30:05Z", "Asia/Tokyo") == "2025-08-02T10:30:05Z"
    assert f.utc("2025-08-02", "Asia/Tokyo") == "2025-08-02"  # a date is never shifted
    assert f.utc("2025-08-02T10:30:05", "Mars/Olympus_Mons") is None
    assert f.utc("2025-08-02T10:30:05", 5) is None
    assert run("$utc(t, $timezone)", {"t": "2025-08-02T10:30:05"}) == "2025-08-02T10:30:05Z"  # unbound: UTC
    assert run("$utc(t, $timezone)", {"t": "2025-08-02T10:30:05"},
               timezone="America/Chicago") == "2025-08-02T15:30:05Z"


def test_minutes_between() -> None:
    assert f.minutes_between("2024-03-06T15:00:00Z", "2024-03-06T15:53:00Z") == 53
    assert f.minutes_between("2024-03-06T15:00:00Z", "2024-03-06T15:00:30Z") == 0.5
    assert f.minutes_between("2024-03-06T16:00:00Z", "2024-03-06T15:00:00Z") is None
    assert f.minutes_between(None, "2024-03-06T15:00:00Z") is None


def test_sheets_dates() -> None:
    assert f.sheets_date(25569) == "1970-01-01"
    assert f.sheets_date(45361.75) == "2024-03-10"
    assert f.sheets_date("45361") == "2024-03-10"
    assert f.sheets_date("3/4/2024") == "2024-03-04"
    assert f.sheets_date("2024-03-04") == "2024-03-04"
    assert f.sheets_date("13/45/2024") is None and f.sheets_date("soon") is None
    # the tap's DATE_TIME cell (the sheet's wall time with a Z) and a formatted date-time
    assert f.sheets_date("1986-07-04T00:00:00.000000Z") == "1986-07-04"
    assert f.sheets_date("3/4/2024 9:30:00") == "2024-03-04"
    assert f.sheets_date("3/15/52") is None, "a two-digit year is no date, never 2052 for a birth"


# --------------------------------------------------------------------------- text, numbers, ids


def test_preview_collapses_and_caps_at_256() -> None:
    text = "  Hello\n\n\tthere  " + "x" * 400
    out = f.preview(text)
    assert out is not None and out.startswith("Hello there x") and len(out) == 256
    assert f.preview(None) is None
    assert run("$preview(t)", {"t": "a \n b"}) == "a b"


def test_html_to_text_entities_blocks_and_scripts() -> None:
    html = ("<div>A&amp;B</div>\r\n  <script>var x = '<p>';</script><ul><li>one</li>\n<li>two"
            "</li></ul><p>para  graph</p><p>next<br><br>after</p><pre>  keep\n  this</pre>")
    assert f.html_to_text(html) == "A&B\none\ntwo\n\npara graph\n\nnext\n\nafter\n\nkeep\nthis"
    assert f.html_to_text(None) is None
    assert run("$htmlToText(h)", {"h": "<p>x&lt;y</p>"}) == "x<y"


@pytest.mark.parametrize(("value", "expected"), [
    (150, "150.00"), (150.0, "150.00"), (123.4, "123.40"), (2.675, "2.675"), (0.1, "0.10"),
    ("1.2345", "1.2345"), ("$1,234.50", "1234.50"), ("($5.00)", "-5.00"), ("-$5", "-5.00"),
    (-0.5, "-0.50"), (None, None), (True, None), ("abc", None), (float("nan"), None),
    (float("inf"), None), ([], None),
    ("150,00 €", "150.00"), ("1.234,50 €", "1234.50"), ("1,234", "1234.00"), ("1,234,567.89", "1234567.89"),
    ("1.234.567", "1234567.00"), ("1,5", "1.50"), ("1,2,3", None), ("\u20ac\u00a099,90", "99.90"),
    ("1.50.00", None), ("1.5.0", None), ("12.03.2024", None),
])
def test_decimal_is_string_exact(value: Any, expected: str | None) -> None:
    assert f.decimal(value) == expected


def test_decimal_through_jsonata_keeps_the_json_digits() -> None:
    out = run('{"a": $decimal(a), "b": $decimal(b), "c": $decimal(c)}',
              orjson.loads(b'{"a": 175.0, "b": 0.30000000000000004, "c": 19.99}'))
    assert out == {"a": "175.00", "b": "0.30000000000000004", "c": "19.99"}


@pytest.mark.parametrize(("phone", "expected"), [
    ("(212) 555-0101", "+12125550101"), ("212-555-0101", "+12125550101"),
    ("+1 212 555 0101", "+12125550101"), ("212.555.0101 x12", "+12125550101"),
    ("1 (212) 555-0101", "+12125550101"), ("+44 20 7946 0958", "+442079460958"),
    ("0044 20 7946 0958", "+442079460958"), ("555-0101", None), ("", None), (None, None),
    ("(012) 555-0101", None), ("+44 (0)7700 900123", "+447700900123"), ("0044 (0)20 7946 0958", "+442079460958"),
])
def test_e164(phone: str | None, expected: str | None) -> None:
    assert f.e164(phone) == expected


def test_country_code_number_compact_sha256() -> None:
    assert f.country_code(" united  states ") == "US" and f.country_code("Narnia") is None
    assert f.to_number("60") == 60 and f.to_number(" 1.5 ") == 1.5 and f.to_number("n/a") is None
    assert f.compact({"a": None, "b": "", "c": 1}) == {"c": 1} and f.compact({}) is None
    assert f.sha256("abc") == hashlib.sha256(b"abc").hexdigest()
    assert run('$compact($merge([{"x": null}]))') is None


def test_email_address_lowers_ascii_only() -> None:
    assert f.email_address("  Jane.Doe@Example.ORG ") == "jane.doe@example.org"
    assert f.email_address("\u212aim@example.com") == "\u212aim@example.com"  # not kim@: a look-alike
    assert f.email_address(None) is None and f.email_address(42) is None
    assert run("$emailAddress(e)", {"e": " A@B.org"}) == "a@b.org"


def test_mail_date_keeps_four_digit_years_as_written() -> None:
    """RFC 5322's two-digit rule is for two or three digits: "0099" is not 1999."""
    assert f.mail_date("Mon, 1 Jan 0099 00:30:00 +0100") is None
    assert f.mail_date("Mon, 1 Jan 0001 00:30:00 +0100") is None
    assert f.mail_date("Mon, 1 Jan 99 00:30:00 +0100")["local"] == "1999-01-01T00:30:00+01:00"  # type: ignore[index]
    assert f.mail_date("Tue, 5 Mar 2024 09:15:00 -0500 (EST)")["utc"] == "2024-03-05T14:15:00Z"  # type: ignore[index]


def test_mail_key_is_null_when_nothing_tells_messages_apart() -> None:
    """Two different drafts (no Message-ID, no sender, no time) must not share one key."""
    assert f.mail_key(None, None, None, None) is None
    assert f.mail_key([], [], None, "Re: appointment") is None
    assert f.mail_key(None, [{"email": "a@x.org"}], None, "Hello") is None
    assert f.mail_key(None, [{"email": "a@x.org"}], "2024-03-04T10:00:00Z", "Hello").startswith("sha256:")  # type: ignore[union-attr]


def test_quoted_pairs_in_display_names_are_unescaped() -> None:
    assert f.addresses('"Doe \\"JJ\\" Jane" <jj@x.org>') == [{"name": 'Doe "JJ" Jane', "email": "jj@x.org"}]
    assert f.addresses('"O\\\\Brien" <o@x.org>') == [{"name": "O\\Brien", "email": "o@x.org"}]


def test_addresses_with_comments_in_brackets_and_unclosed_brackets() -> None:
    assert f.addresses("Orla <orla.quimby@mailbox.test (home)>") == [
        {"name": "Orla", "email": "orla.quimby@mailbox.test"}]
    assert f.addresses("Ann <ann@x.org, Bob <bob@y.org>") == [
        {"name": "Ann", "email": "ann@x.org"}, {"name": "Bob", "email": "bob@y.org"}]
    assert f.addresses("jane@x.org (Jane \\) Doe)") == [{"name": "Jane ) Doe", "email": "jane@x.org"}]
    assert f.addresses("<@r1.org,@r2.org:user@host.org>") == [{"name": None, "email": "user@host.org"}]


def test_sheets_date_reads_day_first_sheets_when_told() -> None:
    """A sheet in a European locale writes 04/05/1992 for the 4th of May; read as US it was
    the 5th of April (a wrong birth date, so a wrong name-plus-birth-date key)."""
    from engine.canon.compiled import compile_expression

    expr = compile_expression('[$sheetsDate("04/05/1992"), $sheetsDate("04/05/1992", "DMY"), '
                              '$sheetsDate("31/12/1990 10:00", "DMY"), $sheetsDate("31/12/1990"), '
                              '$sheetsDate(33000, "DMY"), $sheetsDate("1/2/1990", "YMD")]')
    assert expr.evaluate({}) == ["1992-04-05", "1992-05-04", "1990-12-31", None, "1990-05-07", None]


@pytest.mark.parametrize(("text", "said"), [("nothing_here", "nothing (null or no match)"), ("[1, 2]", "an array"),
                                            ("'Jane Qzxc'", "a string"), ("42", "a number"), ("true", "a boolean")])
def test_a_transform_that_returns_no_object_is_told_in_json_words(tmp_path: Any, text: str, said: str) -> None:
    """The reason read "transform returned NoneType" (Python's words); never the value (PHI)."""
    import dataclasses

    from engine.canon.compiled import CompiledTransform, RecordRejected
    from engine.canon.registry import Registry

    reg = Registry.load(None, None)
    base = reg.get("clinical/dataverse_contact_to_contact_v1")
    (tmp_path / "t.jsonata").write_text(text)
    compiled = CompiledTransform(reg, dataclasses.replace(base, path=tmp_path / "t.jsonata"))
    with pytest.raises(RecordRejected) as info:
        compiled.apply({"x": 1}, {"source": "s", "account": "a"})
    assert info.value.code == "TRANSFORM_NOT_OBJECT" and said in info.value.reason and "Qzxc" not in info.value.reason
