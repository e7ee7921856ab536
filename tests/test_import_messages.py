"""What `collect import` says it did: new rows and rows the store had already (ignored for payments,
promises and events; updated for customers, invoices and disputes), a reference to an invoice the store
does not have, and `--quiet` for cron (errors only). Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from collect.cli import app

INVOICES = ("invoice_id,customer_id,amount,due_date,customer_name\n"
            "FE-1001,C1,100,2026-12-01,ACME\nFE-1002,C1,200,2026-12-05,ACME\n")
POLICY = textwrap.dedent("""\
    policy: t
    timezone: America/Lima
    fields: { customer.risk_score: float }
    windows: { default: { mon-fri: "08:00-18:00" } }
    segments: { never: 'invoice.due_date > 2026-02-01 and invoice.due_date < 2026-01-01' }
    templates: { t: { email: { subject: "s", body: "b" } } }
    stages:
      s:
        when: invoice.days_past_due <= 0
        steps:
          - { id: a, at: due-1d, send: email, template: t }
    """)


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch):
    """`collect import KIND NAME` of a file written with `text`, in tmp_path, on the test's store."""
    monkeypatch.chdir(tmp_path)

    def run(kind: str, name: str, text: str | None = None, *options: str):
        if text is not None:
            (tmp_path / name).write_text(text, encoding="utf-8")
        return CliRunner().invoke(app, ["import", kind, name, "--db", db_url, "--timezone", "America/Lima",
                                        *options])
    run.url = db_url
    return run


def said(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_reimporting_payments_says_none_was_new(cli):
    said(cli("invoices", "facturas.csv", INVOICES))
    pagos = "payment_id,invoice_id,amount,paid_at\nP1,FE-1001,10,2026-11-20\nP2,FE-1002,20,2026-11-20\n"
    assert said(cli("payments", "erp-pagos.csv", pagos)) == "imported 2 new payments from erp-pagos.csv"
    assert said(cli("payments", "erp-pagos.csv")) == "imported 0 new payments from erp-pagos.csv (2 already stored)"
    tomorrow = pagos + "P3,FE-1002,5,2026-11-21\n"
    assert said(cli("payments", "erp-pagos.csv", tomorrow)) == ("imported 1 new payment from erp-pagos.csv "
                                                                "(2 already stored)")


def test_reimporting_promises_and_events_says_none_was_new(cli):
    said(cli("invoices", "facturas.csv", INVOICES))
    promesas = "invoice_id,amount,promised_date\nFE-1001,50,2026-12-10\nFE-1001,50,2026-12-10\n"  # one, twice
    assert said(cli("promises", "promesas.csv", promesas)) == "imported 1 new promise from promesas.csv"
    assert said(cli("promises", "promesas.csv")) == "imported 0 new promises from promesas.csv (1 already stored)"
    events = "at,channel,type,customer_id\n2026-11-20T10:00,sms,conversation,C1\n2026-11-21T10:00,sms,conversation,C1\n"
    assert said(cli("events", "events.csv", events)) == "imported 2 new events from events.csv"
    assert said(cli("events", "events.csv")) == "imported 0 new events from events.csv (2 already stored)"


def test_reimporting_what_updates_says_new_and_updated(cli):
    assert said(cli("invoices", "facturas.csv", INVOICES)) == "imported 2 invoices from facturas.csv"
    more = INVOICES + "FE-1003,C2,300,2026-12-07,Beta\n"
    assert said(cli("invoices", "facturas.csv", more)) == "imported 3 invoices from facturas.csv (1 new, 2 updated)"
    clientes = "customer_id,phone\nC1,+51987654321\nC9,+51987654322\n"
    assert said(cli("customers", "clientes.csv", clientes)) == "imported 2 customers from clientes.csv (1 new, 1 updated)"
    disputas = "invoice_id,opened_at,reason\nFE-1001,2026-11-20,monto\n"
    assert said(cli("disputes", "disputas.csv", disputas)) == "imported 1 dispute from disputas.csv"
    resolved = "invoice_id,opened_at,resolved_at\nFE-1001,2026-11-20,2026-11-25\nFE-1002,2026-11-21,\n"
    assert said(cli("disputes", "disputas.csv", resolved)) == "imported 2 disputes from disputas.csv (1 new, 1 updated)"


@pytest.mark.parametrize("kind, text", [
    ("payments", "payment_id,invoice_id,amount,paid_at\nP1,FE-1004,10,2026-11-20\n"),
    ("promises", "invoice_id,amount,promised_date\nFE-1004,10,2026-12-10\n"),
    ("disputes", "invoice_id,opened_at\nFE-1004,2026-11-20\n"),
])
def test_an_invoice_the_store_does_not_have_is_not_in_the_store(cli, kind, text):
    said(cli("invoices", "facturas.csv", INVOICES))
    result = cli(kind, "f.csv", text)
    assert result.exit_code == 1
    assert "f.csv:2: column invoice_id: unknown invoice 'FE-1004' (not in the store: import the invoices first)" \
        in result.stderr and "portfolio" not in result.stderr


def test_a_customer_the_store_does_not_have_is_not_in_the_store(cli):
    result = cli("promises", "promesas.csv", "customer_id,amount,promised_date\nC7,10,2026-12-10\n")
    assert result.exit_code == 1
    assert "unknown customer 'C7' (not in the store: import its invoices or customers first)" in result.stderr


def test_quiet_prints_only_errors_and_not_the_policys_warnings(cli, tmp_path):
    """For cron: `--quiet` prints nothing when the import goes well, not even the policy's compile
    warnings or the warning about columns kept as text (as `collect run --quiet`); errors always."""
    (tmp_path / "p.yaml").write_text(POLICY, encoding="utf-8")
    loud = cli("invoices", "facturas.csv", INVOICES, "--policy", "p.yaml")
    assert loud.exit_code == 0 and "imported 2 invoices" in loud.stdout and "[never-true]" in loud.stderr
    assert cli("invoices", "facturas.csv", None, "--policy", "p.yaml", "-q").output == ""
    extra = INVOICES.replace("customer_name\n", "customer_name,ruta\n").replace("ACME\n", "ACME,norte\n")
    assert "warning: columns ruta" in cli("invoices", "extra.csv", extra).stderr
    assert cli("invoices", "extra.csv", None, "--quiet").output == ""
    bad = cli("payments", "pagos.csv", "payment_id,invoice_id,amount,paid_at\nP1,FE-1004,10,2026-11-20\n", "-q")
    assert bad.exit_code == 1 and bad.stdout == ""
    assert "unknown invoice 'FE-1004'" in bad.stderr and "nothing imported: 1 problem(s)" in bad.stderr
    broken = cli("invoices", "facturas.csv", None, "--policy", "missing.yaml", "-q")
    assert broken.exit_code == 1 and "missing.yaml" in broken.stderr  # a policy that does not compile


def test_import_translates_the_map_s_values_and_refuses_a_misspelt_column(cli, tmp_path):
    said(cli("invoices", "facturas.csv", INVOICES))
    (tmp_path / "map.yaml").write_text("values: {type: {CONVERSACION: conversation}, channel: {WSP: whatsapp}}\n")
    events = "at,channel,type,customer_id\n2026-11-20T10:00,WSP,CONVERSACION,C1\n"
    assert said(cli("events", "eventos.csv", events, "--map", "map.yaml")) == "imported 1 new event from eventos.csv"
    (tmp_path / "typo.yaml").write_text("values: {metod: {TR: transfer}}\n")
    pagos = "payment_id,invoice_id,amount,paid_at,method\nP1,FE-1001,10,2026-11-20,TR\n"
    refused = cli("payments", "pagos.csv", pagos, "--map", "typo.yaml")
    assert refused.exit_code == 1
    assert "typo.yaml:1: values: column 'metod' is in none of the files read (did you mean 'method'?)" in refused.output
    assert said(cli("payments", "pagos.csv")) == "imported 1 new payment from pagos.csv"  # nothing was half-written


def test_a_promise_about_another_customer_s_invoice_is_refused(cli):
    """The store keeps a promise by customer: CUST-2's promise about CUST-1's invoice would be ignored by
    the decision core of both."""
    said(cli("invoices", "facturas.csv", "invoice_id,customer_id,amount,due_date\nINV-1001,CUST-1,100,2026-12-01\n"
                                         "INV-2001,CUST-2,100,2026-12-01\n"))
    promesas = ("invoice_id,customer_id,amount,promised_date\nINV-1001,CUST-1,50,2026-12-10\n"
                "INV-1001,CUST-2,50,2026-12-11\n")
    result = cli("promises", "promesas.csv", promesas)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "promesas.csv:3: column customer_id: invoice 'INV-1001' belongs to customer 'CUST-1', not 'CUST-2'",
        "nothing imported: 1 problem(s)"]
    assert said(cli("promises", "promesas.csv", promesas.rsplit("INV-1001,CUST-2", 1)[0])) == (
        "imported 1 new promise from promesas.csv")


def test_a_value_table_keyed_by_the_file_s_header_is_told_first(cli, tmp_path):
    (tmp_path / "map.yaml").write_text("columns: {status: Estado}\nvalues: {Estado: {ABIERTA: open}}\n")
    result = cli("invoices", "facturas.csv",
                 "invoice_id,customer_id,amount,due_date,Estado\nFE-1,C1,1,2026-12-01,ABIERTA\n", "--map", "map.yaml")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "map.yaml:2: values: 'Estado' is the file's header of column 'status': key values by our name "
        "(values: {status: ...})",
        "facturas.csv:2: column Estado: unknown status 'ABIERTA' (expected open, paid, disputed, written_off)",
        "nothing imported: 2 problem(s)"]


def test_an_event_about_another_customer_s_contact_is_refused(cli):
    """A report names its contact and, maybe, a customer: another customer's would take the contact's
    STOP (the opt-out would go to the wrong customer, and the right one would still be texted)."""
    import datetime as dt

    from sqlalchemy import insert, select

    from collect.engine import store as s

    said(cli("invoices", "facturas.csv", INVOICES + "FE-2001,C2,100,2026-12-01,Beta\n"))
    engine = s.connect(cli.url)
    now = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(insert(s.contacts).values(key="k1", policy="p", plan_hash="h", customer_id="C1",
                                               invoice_ids="FE-1001", channel="sms", status="sent", attempts=1,
                                               at=now, tz="America/Lima", fallbacks=[], updated_at=now))
    events = "at,channel,type,contact_id,customer_id,detail\n2026-11-20T10:00,sms,replied,k1,C2,STOP\n"
    result = cli("events", "eventos.csv", events)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "eventos.csv:2: column customer_id: contact 'k1' belongs to customer 'C1', not 'C2'",
        "nothing imported: 1 problem(s)"]
    assert said(cli("events", "eventos.csv", events.replace(",C2,", ",C1,"))) == "imported 1 new event from eventos.csv"
    with engine.connect() as conn:
        assert dict(conn.execute(select(s.customers.c.id, s.customers.c.optouts)).all()) == {"C1": ["sms"], "C2": []}
    engine.dispose()


def test_a_delivery_report_about_a_contact_never_sent_is_refused(cli):
    """A deferred or skipped contact never reached a provider: a `delivered` or `bounced` report naming
    it names the wrong contact (a bounce would otherwise be dropped without a word), and so does a reply:
    the file is refused whole, so the reply's STOP is not lost but waits for the right contact."""
    import datetime as dt

    from sqlalchemy import insert, select

    from collect.engine import store as s

    said(cli("invoices", "facturas.csv", INVOICES))
    engine = s.connect(cli.url)
    now = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        for key, status in (("k1", "deferred"), ("k2", "skipped"), ("k3", "sent")):
            conn.execute(insert(s.contacts).values(key=key, policy="p", plan_hash="h", customer_id="C1",
                                                   invoice_ids="FE-1001", channel="sms", status=status, attempts=1,
                                                   at=now, tz="America/Lima", fallbacks=[], updated_at=now))
    events = ("at,channel,type,contact_id,detail\n2026-11-20T10:00,sms,delivered,k1,\n"
              "2026-11-20T10:00,sms,bounced,k2,no such number\n2026-11-20T10:00,sms,delivered,k3,\n"
              "2026-11-20T11:00,sms,replied,k1,STOP\n")
    result = cli("events", "eventos.csv", events)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "eventos.csv:2: column contact_id: contact 'k1' was deferred, never sent: no provider can report it "
        "delivered",
        "eventos.csv:3: column contact_id: contact 'k2' was skipped, never sent: no provider can report it bounced",
        "eventos.csv:5: column contact_id: contact 'k1' was deferred, never sent: no provider can report it replied",
        "nothing imported: 3 problem(s)"]
    with engine.connect() as conn:
        assert conn.execute(select(s.customers.c.optouts)).scalar_one() == []
    fixed = ("at,channel,type,contact_id,detail\n2026-11-20T10:00,sms,delivered,k3,\n"
             "2026-11-20T10:30,sms,bounced,k3,no such number\n2026-11-20T11:00,sms,replied,k3,STOP\n")
    assert said(cli("events", "eventos.csv", fixed)) == "imported 3 new events from eventos.csv"
    with engine.connect() as conn:
        assert dict(conn.execute(select(s.contacts.c.key, s.contacts.c.status)).all()) == {
            "k1": "deferred", "k2": "skipped", "k3": "failed"}
        assert conn.execute(select(s.customers.c.optouts)).scalar_one() == ["sms"]
    engine.dispose()


def test_a_conversation_on_a_channel_no_one_answers_on_is_refused(cli):
    """`conversation` on webhook or letter was stored, and would start a lock on calls (Reg F) for nothing."""
    said(cli("invoices", "facturas.csv", INVOICES))
    events = ("at,channel,type,customer_id\n2026-11-20T10:00,webhook,conversation,C1\n"
              "2026-11-20T11:00,voice,conversation,C1\n")
    result = cli("events", "eventos.csv", events)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "eventos.csv:2: column channel: a conversation is with a person: not on 'webhook' (a call is on voice, an "
        "agent's on agent)", "nothing imported: 1 problem(s)"]


@pytest.mark.parametrize("name", ["nosuch.csv", "folder"])
def test_a_file_that_cannot_be_opened_creates_no_store(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    result = CliRunner().invoke(app, ["import", "invoices", name, "--db", f"sqlite:///{tmp_path / 'new.db'}"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{name}:1: cannot read the file: [Errno ")
    assert "nothing imported: 1 problem(s)" in result.stderr
    assert not (tmp_path / "new.db").exists()
