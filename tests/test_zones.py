"""Customers without a time zone follow the policy's clock (SPEC 4.1); `collect simulate` warns when
their country keeps other clocks, as their contacts would go out at the policy's hours, not theirs."""

from __future__ import annotations

from types import SimpleNamespace

from typer.testing import CliRunner

from collect.cli import app
from collect.engine.zones import off_clock


def who(cid: str, country: str | None, timezone: str | None = None):
    return SimpleNamespace(id=cid, country=country, timezone=timezone)


def test_customers_of_a_country_on_other_clocks_are_reported_by_country():
    customers = [who("C3", "MX"), who("C1", "MX"), who("C2", "CO"), who("C4", "PE"),
                 who("C5", "MX", "America/Mexico_City"), who("C6", None), who("C7", "mx")]
    found = off_clock(customers, "America/Lima", 2026)
    # Colombia keeps Lima's clock all year; Peru is the policy's own country; C5 has its zone
    assert [(f.country, f.customers) for f in found] == [("MX", ("C1", "C3", "C7"))]
    assert "America/Mexico_City" in found[0].zones and "America/Cancun" not in found[0].zones  # Cancun: UTC-5
    assert found[0].line("America/Lima").startswith(
        "3 customers in MX without a timezone (C1, C3, C7) follow the policy's America/Lima hours, but MX keeps "
        "other clocks (America/Mexico_City")


def test_the_policy_s_own_country_is_known_under_any_name_of_its_zone():
    """`US/Eastern` is America/New_York (the same tzdata file), `America/Montreal` is Toronto's. The own
    country of several clocks is said as such (`home`): most customers may be on the policy's clock."""
    def found(customers, zone):
        return [(f.country, f.home) for f in off_clock(customers, zone, 2026)]
    assert found([who("C1", "US")], "US/Eastern") == [("US", True)]
    assert found([who("C1", "CA")], "America/Montreal") == [("CA", True)]
    assert found([who("C1", "US")], "America/Montreal") == [("US", False)]
    # one more name of Phoenix's zone: not a zone of Canada's, whose Creston shares Phoenix's clock
    assert found([who("C1", "US"), who("C2", "CA")], "US/Arizona") == [("CA", False), ("US", True)]


def test_customers_of_the_policy_s_own_country_of_several_clocks_are_warned_about():
    """A US customer without a timezone under a New York policy was called at 08:00 New York time, 05:00 in
    Los Angeles, with no warning (Reg F's hours are the consumer's); a one-clock country has none."""
    (us,) = off_clock([who("C1", "US"), who("C2", "US")], "America/New_York", 2026)
    assert "America/Los_Angeles" in us.zones and "America/Detroit" not in us.zones  # Detroit: New York's clock
    assert us.line("America/New_York").startswith(
        "2 customers in US without a timezone (C1, C2) follow the policy's America/New_York hours, but US also "
        "keeps other clocks (America/Chicago")
    assert off_clock([who("C1", "PE"), who("C2", "CO")], "America/Lima", 2026) == []


def test_a_country_is_reported_when_its_main_zone_or_most_of_its_zones_keep_other_clocks():
    """Ecuador is on Lima's clock but for the Galapagos, Spain on Berlin's but for the Canaries: no warning;
    most of Brazil's zones differ from Lima's (Rio Branco's does not)."""
    assert off_clock([who("C1", "EC")], "America/Lima", 2026) == []
    # ... but Guayaquil, Ecuador's main zone, is not on Guatemala's clock, though the Galapagos are
    assert [f.country for f in off_clock([who("C1", "EC")], "America/Guatemala", 2026)] == ["EC"]
    assert off_clock([who("C1", "ES")], "Europe/Berlin", 2026) == []
    found = off_clock([who("C1", "BR")], "America/Lima", 2026)
    assert [f.country for f in found] == ["BR"] and "America/Rio_Branco" not in found[0].zones


def test_a_country_is_on_other_clocks_when_only_its_summer_differs():
    """Havana keeps Lima's UTC-5 in winter but not in summer (DST): contacts an hour off half the year."""
    assert [f.country for f in off_clock([who("C1", "CU")], "America/Lima", 2026)] == ["CU"]
    assert off_clock([who("C1", "PE")], "America/Bogota", 2026) == []  # Peru: UTC-5 all year, as Bogota


POLICY = ("policy: p\ntimezone: America/Lima\ncurrency: PEN\nwindows:\n  default: { mon-fri: \"08:00-19:00\" }\n"
          "templates:\n  m:\n    email: { subject: s, body: b }\nstages:\n  s:\n    when: invoice.days_past_due >= 0\n"
          "    steps:\n      - { id: a, at: due+1d, send: email, template: m }\n")


def test_simulate_warns_once_per_country_and_quiet_hides_it(tmp_path):
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "p.csv").write_text(
        "invoice_id,customer_id,amount,due_date,email,country,timezone\n"
        "F1,C1,100,2026-11-16,a@example.mx,MX,\nF2,C2,100,2026-11-16,b@example.mx,MX,\n"
        "F3,C3,100,2026-11-16,c@example.mx,MX,America/Mexico_City\nF4,C4,100,2026-11-16,d@example.pe,PE,\n",
        encoding="utf-8")
    args = ["simulate", str(tmp_path / "policy.yaml"), "--portfolio", str(tmp_path / "p.csv"), "--start",
            "2026-11-16", "--days", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning:" in line]
    assert warnings == [f"{tmp_path / 'p.csv'}: warning: 2 customers in MX without a timezone (C1, C2) follow the "
                        "policy's America/Lima hours, but MX keeps other clocks (America/Mexico_City, "
                        "America/Merida, America/Monterrey, ...): give them a timezone column (docs/files.md)"]
    quiet = CliRunner().invoke(app, args + ["-q"])
    assert quiet.exit_code == 0 and "warning" not in quiet.output


def test_import_with_a_policy_warns_about_the_customers_as_stored(tmp_path, monkeypatch):
    """`collect import --policy` warns too, by the customers as the store has them after the file: a
    zone stored by an earlier import counts, a file without the column does not remove it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "customers.csv").write_text("customer_id,timezone,country\nC1,America/Mexico_City,MX\n", encoding="utf-8")
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,country\nF1,C1,100,2026-11-16,MX\n"
                                    "F2,C2,100,2026-11-16,MX\nF3,C3,100,2026-11-16,PE\n", encoding="utf-8")
    runner = CliRunner()
    first = runner.invoke(app, ["import", "customers", "customers.csv", "--policy", "policy.yaml"])
    assert first.exit_code == 0 and "warning" not in first.output, first.output
    result = runner.invoke(app, ["import", "invoices", "p.csv", "--policy", "policy.yaml"])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if "warning" in line] == [
        "p.csv: warning: 1 customer in MX without a timezone (C2) follows the policy's America/Lima hours, but MX "
        "keeps other clocks (America/Mexico_City, America/Merida, America/Monterrey, ...): give them a timezone "
        "column (docs/files.md)"]
    quiet = runner.invoke(app, ["import", "invoices", "p.csv", "--policy", "policy.yaml", "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_zone1970_tab_is_read_when_a_tzdata_release_has_no_zone_tab(monkeypatch):
    from collect.engine import zones

    real = zones._tzdata
    monkeypatch.setattr(zones, "_tzdata", lambda *parts: real("no-such.tab") if parts == ("zone.tab",) else real(*parts))
    zones.country_zones.cache_clear()
    try:
        found = zones.country_zones()
        assert "Asia/Dubai" in found["OM"] and "Asia/Dubai" in found["AE"]  # a line of several countries
        assert found["PE"] == ("America/Lima",)
    finally:
        zones.country_zones.cache_clear()
