"""Demo QuickBooks Online tap: raw PascalCase ``Customer``, ``Invoice`` and ``Payment``.

Shaped like singer-io/tap-quickbooks records: string ``Id``/``SyncToken``, ``MetaData`` with
the company's UTC offset, ``*Ref {value,name}`` references, and empty fields left out rather
than nulled, as QBO does. Invoices reference emitted customers and end their ``Line`` array
with the SubTotalLineDetail line QBO always adds; each payment pays one emitted invoice in
full through ``Line[].LinkedTxn`` (and that invoice lists the payment back, with Balance 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.demo_taps import canary, texts
from engine.demo_taps.common import DAY, iso_date, iso_offset, mix64, split_counts, timeline
from engine.demo_taps.people import NAME_TWIN_OF, NON_CLIENT_CUSTOMER, PHONE_ONLY, People
from engine.demo_taps.spec import (
    Record,
    StreamPlan,
    TapContext,
    TapPlan,
    array,
    boolean,
    make_plan,
    number,
    obj,
    stream_schema,
    string,
)

WEIGHTS = (30, 50, 20)
ITEMS = (
    ("1", "Intake assessment (90791)", 200.0),
    ("2", "Psychotherapy 45 min (90834)", 150.0),
    ("3", "Psychotherapy 60 min (90837)", 175.0),
    ("3", "Psychotherapy 60 min (90837)", 175.0),
    ("4", "Family therapy (90847)", 160.0),
    ("5", "Late cancellation fee", 75.0),
)
_REF = obj(value=string(), name=string())
_META = obj(CreateTime=string(fmt="date-time"), LastUpdatedTime=string(fmt="date-time"))
_USD = {"value": "USD", "name": "United States Dollar"}
EAP_NAME = "Harborview EAP Services"
EAP_EMAIL = "billing@harborview-eap.example"
EAP_PHONE = "(800) 555-0199"
CUSTOMER_SCHEMA = stream_schema({
    "Id": string(False), "SyncToken": string(), "MetaData": _META, "DisplayName": string(),
    "FullyQualifiedName": string(), "GivenName": string(), "FamilyName": string(),
    "CompanyName": string(),
    "PrimaryEmailAddr": obj(Address=string()), "PrimaryPhone": obj(FreeFormNumber=string()),
    "Mobile": obj(FreeFormNumber=string()),
    "BillAddr": obj(Id=string(), Line1=string(), City=string(),
                    CountrySubDivisionCode=string(), PostalCode=string(), Country=string()),
    "Active": boolean(), "Balance": number(), "Notes": string(), "Taxable": boolean(),
    "PreferredDeliveryMethod": string(), "CurrencyRef": _REF, "domain": string(),
    "sparse": boolean(),
})
_SALES_LINE = obj(
    Id=string(), LineNum=number(), Description=string(), Amount=number(), DetailType=string(),
    SalesItemLineDetail=obj(ItemRef=_REF, Qty=number(), UnitPrice=number(),
                            ServiceDate=string(fmt="date"), TaxCodeRef=obj(value=string())),
    SubTotalLineDetail=obj(),
)
_LINKED = array(obj(TxnId=string(), TxnType=string()))
INVOICE_SCHEMA = stream_schema({
    "Id": string(False), "SyncToken": string(), "MetaData": _META, "DocNumber": string(),
    "TxnDate": string(fmt="date"), "DueDate": string(fmt="date"), "CustomerRef": _REF,
    "Line": array(_SALES_LINE), "TotalAmt": number(), "Balance": number(),
    "LinkedTxn": _LINKED, "BillEmail": obj(Address=string()),
    "CustomerMemo": obj(value=string()), "PrivateNote": string(), "EmailStatus": string(),
    "CurrencyRef": _REF, "domain": string(), "sparse": boolean(),
})
PAYMENT_SCHEMA = stream_schema({
    "Id": string(False), "SyncToken": string(), "MetaData": _META,
    "TxnDate": string(fmt="date"), "TotalAmt": number(), "UnappliedAmt": number(),
    "CustomerRef": _REF, "PaymentRefNum": string(), "PrivateNote": string(),
    "Line": array(obj(Amount=number(), LinkedTxn=_LINKED)),
    "DepositToAccountRef": _REF, "CurrencyRef": _REF, "domain": string(), "sparse": boolean(),
})


@dataclass(frozen=True, slots=True)
class _InvoiceCore:
    """What a payment needs to know about the invoice it pays."""

    h: int
    customer: int
    txn: int
    total: float


class Company:
    """One QuickBooks company (realm): customers, invoices and payments for one account."""

    def __init__(self, ctx: TapContext, counts: list[int]) -> None:
        self.people = People(ctx.seed)
        self.n_customers, self.n_invoices, self.n_payments = counts
        self.key = ctx.key("qbo")
        self.offset = -28800 if ctx.key("tz") & 1 else -18000
        self.customer_start, self.customer_step = timeline(ctx.key("cust-time"), counts[0])
        self.invoice_start, self.invoice_step = timeline(ctx.key("inv-time"), counts[1])

    def _meta(self, created: int, h: int) -> dict[str, str]:
        updated = created + (h >> 40) % (30 * DAY)
        return {
            "CreateTime": iso_offset(created, self.offset),
            "LastUpdatedTime": iso_offset(updated, self.offset),
        }

    def _local_date(self, epoch: int) -> str:
        """A transaction date: the company's local calendar day, as QBO stores it."""
        return iso_date(epoch + self.offset)

    def display_name(self, c: int) -> str:
        """A unique DisplayName (QBO refuses duplicates, so repeated names get a suffix)."""
        if c == NON_CLIENT_CUSTOMER:
            return EAP_NAME
        name = self.people.get(c).full
        return name if c < self.people.unique_names and c not in NAME_TWIN_OF else f"{name} ({c})"

    def person(self, c: int) -> int | None:
        """The client customer ``c`` is, or None for the EAP company (no client)."""
        return None if c == NON_CLIENT_CUSTOMER else c

    def bill_email(self, c: int) -> str:
        """The address invoices of customer ``c`` are sent to."""
        return EAP_EMAIL if c == NON_CLIENT_CUSTOMER else self.people.get(c).email

    def _eap_customer(self, c: int, h: int, created: int) -> Record:
        return {
            "Id": str(c + 1), "SyncToken": str(h % 4), "MetaData": self._meta(created, h),
            "DisplayName": EAP_NAME, "FullyQualifiedName": EAP_NAME, "CompanyName": EAP_NAME,
            "PrimaryEmailAddr": {"Address": EAP_EMAIL}, "PrimaryPhone": {"FreeFormNumber": EAP_PHONE},
            "Active": True, "Balance": 0.0, "Taxable": False, "PreferredDeliveryMethod": "Email",
            "CurrencyRef": _USD, "domain": "QBO", "sparse": False,
        }

    def customer(self, c: int) -> Record:
        """Customer ``c`` (Id ``c + 1``)."""
        h = mix64(self.key ^ c)
        p = self.people.get(c)
        created = self.customer_start + c * self.customer_step + h % self.customer_step
        if c == NON_CLIENT_CUSTOMER:
            return self._eap_customer(c, h, created)
        record: Record = {
            "Id": str(c + 1), "SyncToken": str(h % 4), "MetaData": self._meta(created, h),
            "DisplayName": self.display_name(c), "FullyQualifiedName": self.display_name(c),
            "GivenName": p.given, "FamilyName": p.family,
        }
        if c == 0 or ((h >> 8) % 10 and c != PHONE_ONLY):
            record["PrimaryEmailAddr"] = {"Address": p.email}
        if c in (0, PHONE_ONLY) or (h >> 12) % 7:
            record["PrimaryPhone"] = {"FreeFormNumber": p.phone(0)}
        if (h >> 16) % 3 == 0:
            record["Mobile"] = {"FreeFormNumber": p.phone(2)}
        if c == 0 or (h >> 20) % 10:
            record["BillAddr"] = {
                "Id": str(1000 + c), "Line1": p.street, "City": p.city,
                "CountrySubDivisionCode": p.state, "PostalCode": p.postal, "Country": "USA",
            }
        record["Active"] = c == 0 or (h >> 24) % 20 != 0
        record["Balance"] = float((h >> 28) % 4 * 25)
        if c == 0:
            record["Notes"] = canary.CANARY_SENTENCE
        elif (h >> 32) % 3 == 0:
            note = texts.CUSTOMER_NOTES[(h >> 34) % len(texts.CUSTOMER_NOTES)]
            record["Notes"] = note.format(month=texts.MONTHS[(h >> 38) % 12], n=h % 10**8)
        record.update(Taxable=False, PreferredDeliveryMethod="Email", CurrencyRef=_USD,
                      domain="QBO", sparse=False)
        return record

    def _core(self, m: int) -> tuple[_InvoiceCore, list[dict[str, Any]]]:
        h = mix64(self.key ^ (m + 1) << 20)
        customer = 0 if m == 0 else h % max(self.n_customers, 1)
        txn = self.invoice_start + m * self.invoice_step
        lines: list[dict[str, Any]] = []
        for n in range(1 + (h >> 8) % 3):
            item, label, price = ITEMS[(h >> (12 + 3 * n)) % len(ITEMS)]
            service = iso_date(txn + self.offset - (n * 7 + 1) * DAY)
            lines.append({
                "Id": str(n + 1), "LineNum": n + 1, "Description": f"{label} {service}",
                "Amount": price, "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item, "name": label}, "UnitPrice": price, "Qty": 1,
                    "ServiceDate": service, "TaxCodeRef": {"value": "NON"},
                },
            })
        total = sum(line["Amount"] for line in lines)
        return _InvoiceCore(h, customer, txn, total), lines

    def invoice_customer(self, m: int) -> int:
        """The customer index of invoice ``m``."""
        return self._core(m)[0].customer

    def payment_customer(self, k: int) -> int:
        """The customer index of payment ``k``."""
        return self._core(self._paid_by(k))[0].customer

    def _payer_of(self, m: int) -> int | None:
        """The payment index that pays invoice ``m``, if any (inverse of ``_paid_by``)."""
        if not self.n_payments or not self.n_invoices:
            return None
        k = -(-m * self.n_payments // self.n_invoices)
        return k if k < self.n_payments and self._paid_by(k) == m else None

    def _paid_by(self, k: int) -> int:
        """The invoice payment ``k`` pays (spread evenly over the invoices)."""
        return min(k * self.n_invoices // max(self.n_payments, 1), max(self.n_invoices - 1, 0))

    def _customer_ref(self, c: int) -> dict[str, str]:
        return {"value": str(c + 1), "name": self.display_name(c)}

    def invoice(self, m: int) -> Record:
        """Invoice ``m`` (Id ``m + 1``, DocNumber ``1001 + m``)."""
        core, lines = self._core(m)
        payer = self._payer_of(m)
        record: Record = {
            "Id": str(m + 1), "SyncToken": str(core.h % 3),
            "MetaData": self._meta(core.txn, core.h),
            "DocNumber": str(1001 + m), "TxnDate": self._local_date(core.txn),
            "DueDate": self._local_date(core.txn + 30 * DAY),
            "CustomerRef": self._customer_ref(core.customer),
            "Line": [*lines, {"Amount": core.total, "DetailType": "SubTotalLineDetail",
                              "SubTotalLineDetail": {}}],
            "TotalAmt": core.total, "Balance": 0.0 if payer is not None else core.total,
        }
        if payer is not None:
            record["LinkedTxn"] = [{"TxnId": str(payer + 1), "TxnType": "Payment"}]
        flags = core.h >> 50
        if flags % 8:
            record["BillEmail"] = {"Address": self.bill_email(core.customer)}
        if m == 0:
            record["PrivateNote"] = f"Superbill for {canary.CANARY_NAME}, dx {canary.CANARY_NOTE}"
        elif flags % 5 == 0:
            record["CustomerMemo"] = {"value": "Thank you for your business."}
        record.update(EmailStatus="EmailSent", CurrencyRef=_USD, domain="QBO", sparse=False)
        return record

    def payment(self, k: int) -> Record:
        """Payment ``k`` (Id ``k + 1``), paying one invoice in full."""
        m = self._paid_by(k)
        core, _ = self._core(m)
        h = mix64(self.key ^ ~k)
        paid_at = core.txn + (1 + (h >> 8) % 20) * DAY
        record: Record = {
            "Id": str(k + 1), "SyncToken": "0", "MetaData": self._meta(paid_at, h),
            "TxnDate": self._local_date(paid_at), "TotalAmt": core.total, "UnappliedAmt": 0.0,
            "CustomerRef": self._customer_ref(core.customer),
        }
        if (h >> 16) % 2:
            record["PaymentRefNum"] = str(1000 + (h >> 20) % 9000)
        if k == 0:
            record["PrivateNote"] = f"Card payment from {canary.CANARY_NAME}"
        linked = [{"TxnId": str(m + 1), "TxnType": "Invoice"}]
        record.update(
            Line=[{"Amount": core.total, "LinkedTxn": linked}],
            DepositToAccountRef={"value": "4", "name": "Undeposited Funds"},
            CurrencyRef=_USD, domain="QBO", sparse=False,
        )
        return record


def plan(ctx: TapContext) -> TapPlan:
    """The QuickBooks tap: ``customers`` 30%, ``invoices`` 50%, ``payments`` 20%."""
    counts = split_counts(ctx.records, WEIGHTS)
    company = Company(ctx, counts)
    return make_plan(ctx, [
        StreamPlan(name="customers", schema=CUSTOMER_SCHEMA, key_properties=["Id"],
                   count=counts[0], make=company.customer, text_field="Notes"),
        StreamPlan(name="invoices", schema=INVOICE_SCHEMA, key_properties=["Id"],
                   count=counts[1], make=company.invoice, text_field="PrivateNote"),
        StreamPlan(name="payments", schema=PAYMENT_SCHEMA, key_properties=["Id"],
                   count=counts[2], make=company.payment, text_field="PrivateNote"),
    ])
