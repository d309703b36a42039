"""Stamp cards: stamps on earn, a full card issues a voucher and starts the next, a voucher is redeemed once,
and the pass shows the stamps as a strip image and a count."""

import io
import json
import zipfile
from datetime import datetime, timezone

import time_machine
from PIL import Image, ImageDraw

from app.domain import sweeps
from app.services import db_session
from passes.stamps import stamp_strip
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program, redeem


def _stamp_shop(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, type="stamps", stamps_required=5, stamp_reward="Free coffee", tiers=[],
                           branding={"background_color": "#102030", "label_color": "#F0C040"})
    return key, program, make_member(client, key, program["id"])


def test_a_full_card_issues_a_voucher_and_starts_the_next(app, client):
    key, _, member = _stamp_shop(app, client)
    body = earn(client, key, member["id"], stamps=3).get_json()
    assert (body["member"]["stamps"], body["member"]["vouchers"]) == (3, [])
    assert body["transaction"]["rule"] == "stamps: +3, 3 of 5 on the card"
    body = earn(client, key, member["id"], stamps=4).get_json()["member"]
    assert body["stamps"] == 2 and [voucher["name"] for voucher in body["vouchers"]] == ["Free coffee"]
    assert body["points_balance"] == 0  # stamps are not points


def test_a_voucher_is_redeemed_once_at_the_till(app, client):
    key, _, member = _stamp_shop(app, client)
    voucher = earn(client, key, member["id"], stamps=5).get_json()["member"]["vouchers"][0]
    used = redeem(client, key, member["id"], voucher_id=voucher["id"])
    assert used.status_code == 201, used.get_json()
    assert used.get_json()["member"]["vouchers"] == []
    assert used.get_json()["transaction"]["reason"] == "Free coffee"
    assert_problem(redeem(client, key, member["id"], voucher_id=voucher["id"]), 409)
    other = make_member(client, key, used.get_json()["member"]["program_id"])
    assert_problem(redeem(client, key, other["id"], voucher_id=voucher["id"]), 422)


def test_stamps_in_a_points_program_are_refused(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"])
    assert "stamps" in assert_problem(earn(client, key, member["id"], stamps=1), 422)["errors"]


def test_a_stamps_program_needs_its_card_size(app, client):
    _, key = make_merchant(app)
    response = client.post("/api/v1/programs", json={"name": "Stamps", "type": "stamps"}, headers=auth(key))
    assert "stamps_required" in assert_problem(response, 422)["errors"]


def test_the_pass_shows_the_stamps_as_a_strip_and_a_count(app, client):
    key, _, member = _stamp_shop(app, client)
    earn(client, key, member["id"], stamps=7)
    response = client.get(member["apple_pass_url"].replace("https://punchpass.test", ""))
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    pass_json = json.loads(archive.read("pass.json"))
    fields = {field["key"]: field["value"] for field in pass_json["storeCard"]["secondaryFields"]}
    back = {field["key"]: field["value"] for field in pass_json["storeCard"]["backFields"]}
    assert fields["stamps"] == "2/5" and back["vouchers"] == "Free coffee"
    assert archive.read("strip@2x.png") == stamp_strip(5, 2, "#102030", "#F0C040")["strip@2x.png"]


def test_the_strip_fills_as_many_stamps_as_collected():
    strip = Image.open(io.BytesIO(stamp_strip(4, 1, "#000000", "#FFFFFF")["strip.png"])).convert("RGB")
    assert strip.size == (375, 123)
    centres = [(int((n + 0.5) * 375 / 4), 61) for n in range(4)]
    assert [strip.getpixel(centre) for centre in centres] == [(255, 255, 255)] + [(0, 0, 0)] * 3
    assert stamp_strip(4, 1, "#000000", "#FFFFFF") is not stamp_strip(4, 1, "#000000", "#FFFFFF")  # copies
    assert stamp_strip(4, 1, "#000000", "#FFFFFF") == stamp_strip(4, 1, "#000000", "#ffffff")  # one cache entry


def test_milestones_issue_their_vouchers_on_the_way_to_a_full_card(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, type="stamps", stamps_required=6, stamp_reward="Free coffee", tiers=[],
                           stamp_milestones=[{"stamps": 3, "reward": "Free cookie"}])
    member = make_member(client, key, program["id"])
    first = earn(client, key, member["id"], stamps=4).get_json()["member"]
    assert [voucher["name"] for voucher in first["vouchers"]] == ["Free cookie"]
    second = earn(client, key, member["id"], stamps=5).get_json()["member"]  # 5, 6 (full), then 1, 2, 3
    assert [voucher["name"] for voucher in second["vouchers"]] == ["Free cookie", "Free coffee", "Free cookie"]
    assert second["stamps"] == 3
    bad = client.patch(f"/api/v1/programs/{program['id']}", json={"stamp_milestones": [{"stamps": 6, "reward": "X"}]},
                       headers=auth(key))
    assert "stamp_milestones" in assert_problem(bad, 422)["errors"]


def test_stamps_expire_days_after_the_last_one(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, type="stamps", stamps_required=5, tiers=[], stamps_expire_days=30)
    member = make_member(client, key, program["id"])
    with time_machine.travel(datetime(2026, 3, 1, tzinfo=timezone.utc), tick=False) as clock:
        earn(client, key, member["id"], stamps=2)
        clock.move_to(datetime(2026, 3, 20, tzinfo=timezone.utc))
        earn(client, key, member["id"], stamps=1)  # the last stamp: 30 days from here
        with app.app_context():
            session = db_session()
            assert sweeps.expire_stamp_cards(session, datetime(2026, 4, 18, tzinfo=timezone.utc))["stamps"] == 0
            assert sweeps.expire_stamp_cards(session, datetime(2026, 4, 19, tzinfo=timezone.utc))["stamps"] == 3
            session.commit()
        clock.move_to(datetime(2026, 4, 20, tzinfo=timezone.utc))
        body = earn(client, key, member["id"], stamps=1).get_json()["member"]
    assert body["stamps"] == 1


def _icon(opaque: bool) -> bytes:
    """A 90 x 90 icon: a solid disc on transparency, or an opaque two-colour photo."""
    image = Image.new("RGBA", (90, 90), (10, 200, 90, 255) if opaque else (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((15, 15, 75, 75), fill=(250, 20, 20, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _pass_files(client, member) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(client.get(member["apple_pass_url"].replace("https://punchpass.test", "")).data))


def test_an_uploaded_stamp_icon_marks_the_collected_stamps_on_the_signed_pass(app, client):
    key, program, member = _stamp_shop(app, client)
    earn(client, key, member["id"], stamps=2)
    before = _pass_files(client, member)
    upload = client.put(f"/api/v1/programs/{program['id']}/images/stamp", headers=auth(key),
                        data={"file": (io.BytesIO(_icon(opaque=False)), "stamp.png")})
    assert upload.status_code == 200, upload.get_json()
    after = _pass_files(client, member)
    assert after.read("strip@2x.png") != before.read("strip@2x.png")
    assert after.read("manifest.json") != before.read("manifest.json")  # a new signed pass, not the cached one
    assert not [name for name in after.namelist() if name.startswith("stamp")]  # drawn in, never a file of its own
    strip = Image.open(io.BytesIO(after.read("strip.png"))).convert("RGB")
    centres = [(round(375 / 5 * (n + 0.5)), 61) for n in range(5)]
    # the first two stamps carry the icon cut out in the background colour; the other three stay empty
    assert [strip.getpixel(c) for c in centres] == [(0x10, 0x20, 0x30)] * 5
    ring = [(x, 61 - 23) for x, _ in centres]  # inside a filled stamp, outside the icon's cut-out
    assert [strip.getpixel(p) for p in ring[:2]] == [(0xF0, 0xC0, 0x40)] * 2


def test_an_opaque_stamp_icon_fills_the_collected_stamps():
    strip = Image.open(io.BytesIO(stamp_strip(4, 1, "#000000", "#FFFFFF", _icon(opaque=True))["strip.png"]))
    centres = [(round(375 / 4 * (n + 0.5)), 61) for n in range(4)]
    red, black = strip.convert("RGB").getpixel(centres[0]), (0, 0, 0)
    assert red[0] > 200 and red[1] < 60 and [strip.convert("RGB").getpixel(c) for c in centres[1:]] == [black] * 3
    assert stamp_strip(4, 1, "#000000", "#FFFFFF") != stamp_strip(4, 1, "#000000", "#FFFFFF", _icon(opaque=True))
