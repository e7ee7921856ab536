"""The step instances of the contacts a store recorded before revision 0002, read from the contact.

0002 added `contacts.steps` (the step instances a contact settles, which a failure report reopens so
that the step falls back to its next channel) and left it empty on the contacts already there: a
bounce or a failed report on one of them marked it failed and left its step done, with no fallback and
no `on_exhausted` task. Such a contact names its step and invoices; its instance for an invoice is
`step|invoice` for a stage step, and for an event step the one occurrence of that step the invoice
has in `steps` (with several, the contact does not say which, and it is left as it was).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

contacts = sa.table("contacts", sa.column("id", sa.Integer), sa.column("customer_id", sa.String),
                    sa.column("step", sa.String), sa.column("invoice_ids", sa.Text), sa.column("steps", sa.JSON))
steps = sa.table("steps", sa.column("key", sa.String), sa.column("customer_id", sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    found: dict[str, list] = {}
    for r in conn.execute(sa.select(contacts.c.id, contacts.c.customer_id, contacts.c.step, contacts.c.invoice_ids)
                          .where(contacts.c.steps.is_(None), contacts.c.step.is_not(None))):
        found.setdefault(r.customer_id, []).append(r)
    for customer, rows in found.items():
        known = {key for (key,) in conn.execute(sa.select(steps.c.key).where(steps.c.customer_id == customer))}
        for r in rows:
            settled = []
            for invoice in r.invoice_ids.split(";"):
                own = f"{r.step}|{invoice}"
                occurrences = [key for key in known if key.startswith(own + "|")]
                settled += [own] if own in known else occurrences if len(occurrences) == 1 else []
            if settled:
                conn.execute(sa.update(contacts).where(contacts.c.id == r.id).values(steps=settled))


def downgrade() -> None:
    pass  # the column stays (0002 drops it); what was filled in is what 0002 would have stored
