"""`punchpass import-members` / `export-members`: streamed CSV, opening balances as `adjust` entries, idempotent
on external_id, bad lines reported by number while the rest goes in."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner
from sqlalchemy import func, select

from app.cli import cli
from app.domain.ledger import verify_balances
from app.models import LedgerEntry, Member, OutboxEvent
from app.services import services
from tests.factories import auth, make_member, make_merchant, make_program

HEADER = "external_id,name,email,phone,locale,points,tier_override\n"


def run(test_env, *args):
    return CliRunner().invoke(cli, [str(arg) for arg in args], env=test_env)


def import_csv(test_env, tmp_path, program_id: int, text: str, *extra, name: str = "members.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return run(test_env, "import-members", path, "--program", program_id, *extra)


def summary(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def members_of(app, program_id: int) -> list[Member]:
    with services(app).sessions() as session:
        return list(session.scalars(select(Member).where(Member.program_id == program_id).order_by(Member.id)))


def a_program(app, client):
    _, key = make_merchant(app)
    return key, make_program(client, key)


def test_import_creates_members_with_opening_balances_as_import_adjustments(app, client, test_env, tmp_path):
    key, program = a_program(app, client)
    text = HEADER + ("crm-1,Ada Lovelace,ADA@example.com,+44 20 7946 0958,en,120,Gold\n"
                     ",Grace Hopper,,,ja,,\n"
                     "crm-3,\"Hopper, Grace Jr\",,,,0,\n")

    result = import_csv(test_env, tmp_path, program["id"], text)

    assert result.exit_code == 0, result.output
    assert summary(result) == {"created": 3, "skipped": 0, "bad_lines": 0}
    ada, grace, junior = members_of(app, program["id"])
    assert (ada.external_id, ada.email, ada.phone, ada.points_balance) == ("crm-1", "ada@example.com",
                                                                          "+442079460958", 120)
    assert ada.tier.name == "Gold" and ada.tier_override_id == ada.tier_id
    assert (grace.locale, grace.points_balance, grace.tier.name) == ("ja", 0, "Bronze")
    assert junior.name == "Hopper, Grace Jr"
    with services(app).sessions() as session:
        entries = session.execute(select(LedgerEntry.member_id, LedgerEntry.kind, LedgerEntry.points,
                                         LedgerEntry.reason).where(LedgerEntry.member_id.in_([ada.id, grace.id]))).all()
        assert verify_balances(session) == []
        pushes = session.scalar(select(func.count()).where(OutboxEvent.member_id.in_([ada.id, grace.id])))
    assert entries == [(ada.id, "adjust", 120, "import")]
    assert pushes == 0  # new cards have no device: nothing to push
    served = client.get(f"/api/v1/members/{ada.id}", headers=auth(key)).get_json()
    assert served["points_balance"] == 120 and served["tier"] == "Gold"
    assert client.get(served["apple_pass_url"].replace("https://punchpass.test", "")).status_code == 200


def test_running_the_same_file_again_neither_duplicates_members_nor_doubles_balances(app, client, test_env,
                                                                                      tmp_path):
    key, program = a_program(app, client)
    rows = [f"ext-{n},Member {n},,,,{n * 10},\n" for n in range(7)]
    half = import_csv(test_env, tmp_path, program["id"], HEADER + "".join(rows[:3]), "--batch-size", 2)  # a crash

    again = import_csv(test_env, tmp_path, program["id"], HEADER + "".join(rows), "--batch-size", 2)

    assert summary(half)["created"] == 3
    assert summary(again) == {"created": 4, "skipped": 3, "bad_lines": 0}
    assert sorted(m.points_balance for m in members_of(app, program["id"])) == [n * 10 for n in range(7)]


def test_a_bad_line_is_reported_with_its_number_and_reason_and_the_import_goes_on(app, client, test_env, tmp_path):
    key, program = a_program(app, client)
    text = HEADER + ("ok-1,Fine,,,,5,\n"
                     "bad-1,,,,,5,\n"                         # line 3: no name
                     "bad-2,Points,,,,-4,\n"                  # line 4
                     "bad-3,Tier,,,,,Diamond\n"               # line 5
                     "bad-4,Phone,,12345,,,\n"                # line 6
                     "bad-5,Locale,,,fr,,\n"                  # line 7
                     "bad-6,Mail,not-an-email,,,,\n"          # line 8
                     "ok-1,Twice,,,,,\n"                      # line 9: repeats line 2
                     "ok-2,\"Two\nlines\",,,,1,\n"            # lines 10-11: one row
                     "bad-7,Extra,,,,1,,surplus\n"            # line 12
                     "ok-3,Last,,,,2,\n")

    result = import_csv(test_env, tmp_path, program["id"], text)

    assert result.exit_code == 1
    assert summary(result) == {"created": 3, "skipped": 0, "bad_lines": 8}
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0] for line in reported] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8, 9, 12)]
    assert "name" in reported[0] and "points" in reported[1] and "Diamond" in reported[2]
    assert "repeats line 2" in reported[6]
    assert [m.name for m in members_of(app, program["id"])] == ["Fine", "Two\nlines", "Last"]


def test_a_line_that_is_not_utf8_is_reported(app, client, test_env, tmp_path):
    key, program = a_program(app, client)
    text = HEADER.encode() + b"x-1,Caf\xe9 Latin-1,,,,,\nx-2,Caf\xc3\xa9,,,,,\n"

    result = import_csv(test_env, tmp_path, program["id"], text)

    assert "line 2: line: Not valid UTF-8." in result.stderr
    assert [m.name for m in members_of(app, program["id"])] == ["Café"]


def test_a_file_without_a_usable_header_is_refused_before_any_row(app, client, test_env, tmp_path):
    key, program = a_program(app, client)

    no_name = import_csv(test_env, tmp_path, program["id"], "external_id,points\nx,1\n")
    typo = import_csv(test_env, tmp_path, program["id"], "name,pionts\nAda,1\n")
    unknown_program = import_csv(test_env, tmp_path, 10**12, HEADER)

    assert no_name.exit_code == 1 and "name is required" in no_name.output
    assert typo.exit_code == 1 and "unknown: pionts" in typo.output
    assert unknown_program.exit_code == 1 and "no program" in unknown_program.output
    assert members_of(app, program["id"]) == []


def test_export_writes_the_import_columns_and_more_and_imports_back(app, client, test_env, tmp_path):
    key, program = a_program(app, client)
    make_member(client, key, program["id"], name="Mina Park", external_id="m-1", email="mina@example.com",
                points=600)
    gone = make_member(client, key, program["id"], name="Deleted Soon")
    client.delete(f"/api/v1/members/{gone['id']}", headers=auth(key))
    out = tmp_path / "export.csv"

    result = run(test_env, "export-members", "--program", program["id"], "--out", out)

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["external_id", "name", "email", "phone", "locale", "points", "tier_override", "id",
                             "points_balance", "tier", "serial_number", "created_at"]
    assert len(rows) == 1
    assert {k: rows[0][k] for k in ("external_id", "name", "points", "points_balance", "tier")} == \
        {"external_id": "m-1", "name": "Mina Park", "points": "600", "points_balance": "600", "tier": "Gold"}
    _, other = a_program(app, client)
    trimmed = tmp_path / "trimmed.csv"
    with out.open() as source, trimmed.open("w") as target:  # the import columns only
        writer = csv.DictWriter(target, fieldnames=HEADER.strip().split(","), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv.DictReader(source))
    assert summary(run(test_env, "import-members", trimmed, "--program", other["id"]))["created"] == 1
    assert members_of(app, other["id"])[0].points_balance == 600


def test_export_to_standard_output(app, client, test_env):
    key, program = a_program(app, client)
    make_member(client, key, program["id"], name="Ada")

    result = run(test_env, "export-members", "--program", program["id"])

    assert result.exit_code == 0
    assert [row["name"] for row in csv.DictReader(io.StringIO(result.stdout))] == ["Ada"]


def test_removing_a_tier_someone_holds_by_override_clears_the_override(app, client, test_env, tmp_path):
    key, program = a_program(app, client)
    import_csv(test_env, tmp_path, program["id"], HEADER + "o-1,Overridden,,,,,Gold\n")
    bronze = next(tier for tier in program["tiers"] if tier["name"] == "Bronze")

    response = client.patch(f"/api/v1/programs/{program['id']}", json={"tiers": [bronze]}, headers=auth(key))

    assert response.status_code == 200, response.get_json()
    member = members_of(app, program["id"])[0]
    assert member.tier_override_id is None and member.tier.name == "Bronze"
