"""The invoices application's task handlers: name this module in HANDLER_MODULES.

Three kinds, one of each way a handler runs:
- `render_invoice`: an `async def`, on the worker's event loop; its payload is checked by the API
  against `InvoicePayload` (422 with field errors) and its tasks default to HIGH priority.
- `email_invoice`: a plain `def` (a blocking mail client, say), run in a thread of its own.
- `invoice_thumbnail`: CPU-bound (`executor="process"`), run in a child process so the worker's
  event loop, and the other tasks on it, never wait for it.
"""

import hashlib
from decimal import Decimal

from marshmallow import Schema, fields, validate

from taskservice import handler

CENTS = Decimal("0.01")


class InvoiceLine(Schema):
    description = fields.String(required=True, validate=validate.Length(1, 200))
    quantity = fields.Integer(required=True, validate=validate.Range(min=1))
    # A string ("12.50") keeps the cents exact; a JSON number is accepted too.
    unit_price = fields.Decimal(required=True, validate=validate.Range(min=0))


class InvoicePayload(Schema):
    number = fields.String(required=True, validate=validate.Length(1, 50))
    customer = fields.String(required=True, validate=validate.Length(1, 200))
    currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))
    tax_rate = fields.Decimal(load_default=Decimal(0), validate=validate.Range(min=0, max=1))
    lines = fields.List(fields.Nested(InvoiceLine), required=True, validate=validate.Length(min=1))


@handler("render_invoice", max_attempts=5, timeout_seconds=30, priority="HIGH", payload_schema=InvoicePayload)
async def render_invoice(task, ctx):
    """The invoice's totals, to the cent (amounts as strings, so no float rounding creeps in)."""
    # The API stored the payload as sent; loading it again gives Decimals and the defaults.
    invoice = InvoicePayload().load(task["payload"])
    subtotal = sum((line["quantity"] * line["unit_price"] for line in invoice["lines"]), Decimal(0))
    tax = (subtotal * invoice["tax_rate"]).quantize(CENTS)
    subtotal = subtotal.quantize(CENTS)
    return {"number": invoice["number"], "customer": invoice["customer"], "currency": invoice["currency"],
            "subtotal": str(subtotal), "tax": str(tax), "total": str(subtotal + tax)}


class EmailPayload(Schema):
    to = fields.Email(required=True)
    number = fields.String(required=True, validate=validate.Length(1, 50))


@handler("email_invoice", max_attempts=5, timeout_seconds=60, payload_schema=EmailPayload)
def email_invoice(task, ctx):
    """Sends the invoice by email; here the "mail server" is the worker's log."""
    to, number = task["payload"]["to"], task["payload"]["number"]
    message_id = f"<invoice-{number}.{ctx.task_id}.{ctx.attempt}@invoices.example>"
    ctx.log.info("emailing invoice %s to %s as %s", number, to, message_id)
    return {"sent_to": to, "message_id": message_id}


class ThumbnailPayload(Schema):
    width = fields.Integer(required=True, validate=validate.Range(1, 4096))
    height = fields.Integer(required=True, validate=validate.Range(1, 4096))
    factor = fields.Integer(load_default=4, validate=validate.Range(1, 64))


@handler("invoice_thumbnail", executor="process", timeout_seconds=120, payload_schema=ThumbnailPayload)
def invoice_thumbnail(task, ctx):
    """Scales a page image down by `factor` (box averaging, in pure Python: CPU-bound on purpose).
    A gradient stands in for the rendered page; the result names the thumbnail by its checksum."""
    page = ThumbnailPayload().load(task["payload"])
    width, height, factor = page["width"], page["height"], page["factor"]
    pixels = [[(x + y) % 256 for x in range(width)] for y in range(height)]
    thumbnail = bytes(downscale(pixels, factor))
    return {"width": width // factor, "height": height // factor,
            "sha256": hashlib.sha256(thumbnail).hexdigest()}


def downscale(pixels: list[list[int]], factor: int):
    """Each `factor` x `factor` box's mean (rounded down), row by row; a partial box at an edge is dropped."""
    for top in range(0, len(pixels) - factor + 1, factor):
        rows = pixels[top:top + factor]
        for left in range(0, len(rows[0]) - factor + 1, factor):
            yield sum(sum(row[left:left + factor]) for row in rows) // (factor * factor)
