"""The demo program `make run` shows: a café with tiers and rewards, and one member with a few points."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import issue_api_key
from app.domain import ledger, members, programs
from app.domain.users import create_user, new_one_time_password
from app.models import Member, Merchant, Program, User

DEMO_MERCHANT = "Demo Café"
DEMO_PROGRAM = {
    "name": "Punchpass Café", "currency": "USD", "points_per_unit": "10",
    "branding": {"background_color": "#3B2F2F", "foreground_color": "#FFFFFF", "label_color": "#F2B84B",
                 "logo_text": "Punchpass Café"},
    "tiers": [{"name": "Bronze", "threshold": 0}, {"name": "Silver", "threshold": 500},
              {"name": "Gold", "threshold": 1500}],
    "terms": "Points have no cash value. One card per customer.",
    "program_info": "Earn 10 points for every dollar you spend.",
}
DEMO_OWNER = "owner@demo.punchpass.test"
DEMO_REWARDS = [("Free drip coffee", 100), ("Pastry of the day", 150), ("Free latte", 250)]


def seed_demo_program(session: Session, public_base_url: str) -> dict:
    """Idempotent: a second run finds the demo merchant and creates nothing; only a first run returns a key."""
    merchant = session.scalar(select(Merchant).where(Merchant.name == DEMO_MERCHANT))
    result: dict = {}
    if merchant is None:
        merchant = Merchant(name=DEMO_MERCHANT)
        session.add(merchant)
        session.flush()
        result["api_key"] = issue_api_key(session, merchant.id, "admin")
        program = programs.create_program(session, merchant.id, DEMO_PROGRAM)
        for name, cost in DEMO_REWARDS:
            programs.add_reward(session, program, name, cost)
        member = members.enroll_member(session, program, {"name": "Aiko Tanaka", "locale": "ja"})
        ledger.earn_points(session, member, 120, reference="demo-welcome", reason="Welcome bonus")
        session.commit()
    program = session.scalar(select(Program).where(Program.merchant_id == merchant.id).order_by(Program.id))
    member = session.scalar(select(Member).where(Member.program_id == program.id).order_by(Member.id))
    result["dashboard"] = _demo_owner_login(session, merchant.id, public_base_url)
    if "api_key" not in result:
        result["hint"] = (f"the admin key was printed on the first run only; make another with "
                          f"`punchpass create-api-key --merchant {merchant.id} --scope admin`")
    result.update(merchant_id=merchant.id, program_id=program.id, member_id=member.id,
                  apple_pass_url=f"{public_base_url}/cards/{member.download_token}.pkpass")
    return result


def _demo_owner_login(session: Session, merchant_id: int, public_base_url: str) -> dict:
    """The demo owner's dashboard login. Until its one-time password is changed, every run prints a fresh one
    (the last one is unknown); once the owner chose a password, only the email."""
    owner = session.scalar(select(User).where(User.email == DEMO_OWNER))
    if owner is None:
        owner, password = create_user(session, merchant_id, DEMO_OWNER, "owner")
    elif owner.must_change_password:
        password = new_one_time_password(session, owner)
    else:
        password = None
    session.commit()
    login = {"url": f"{public_base_url}/dashboard", "email": owner.email}
    if password:
        login["one_time_password"] = password
    else:
        login["hint"] = "the password is the one you chose at the first sign-in"
    return login
