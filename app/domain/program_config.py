"""A program's configuration as immutable values, cached per process: what every earn reads (rates, rounding,
earn rules, promotions, expiry and pending policy, tier rules, tiers, rewards) without loading ORM objects.

The cache is keyed by `programs.config_version`, which every edit of the program, its tiers or rewards replaces
(at flush: `app.models._new_config_versions`). The statement that locks a member returns the version beside the
row (`ledger._lock`), so a hit costs no round trip and an edit committed anywhere is seen by the next earn in
every process; a miss loads the program once and keeps the new values.

The values have the attribute names of `Program`, `Tier` and `Reward`, so the domain's functions (tiers,
earnrules, lots, rewards, stamps, the answers) read them exactly as they read the ORM objects: one code path.
They are read-only: JSON columns become tuples and read-only mappings, and assigning raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from sqlalchemy import Select, inspect, select
from sqlalchemy.orm import Session, lazyload, selectinload

from app.models import Member, Program

MAX_PROGRAMS = 10_000  # cached per process; beyond that the cache starts again (a miss is one load)


@dataclass(frozen=True)
class TierValue:
    id: int
    program_id: int
    name: str
    threshold: int
    multiplier: Decimal
    perks: str | None


@dataclass(frozen=True)
class RewardValue:
    id: int
    program_id: int
    name: str
    points_cost: int
    active: bool
    retired_at: datetime | None
    created_at: datetime


class ProgramConfig:
    """Every column of the program (`config.currency`, `config.earn_rules`, ...) plus `tiers` (by threshold) and
    `rewards` (by cost), as the ORM orders them."""

    def __init__(self, columns: dict[str, Any], tiers: tuple[TierValue, ...], rewards: tuple[RewardValue, ...]):
        self.__dict__.update({key: _frozen(value) for key, value in columns.items()}, tiers=tiers, rewards=rewards)

    def __setattr__(self, key, value):
        raise AttributeError(f"A program's cached configuration is read-only (tried to set {key}).")

    def __repr__(self) -> str:
        return f"<ProgramConfig {self.id} v{self.config_version}>"


_cache: dict[int, ProgramConfig] = {}  # program id -> its newest configuration seen by this process


def select_member(*columns) -> Select:
    """SELECT a member with their program's config_version (then `columns`): no program, tier or tiers loaded,
    since `use_config` gives the member the cached values instead. Add the WHERE (and the lock) to it."""
    return (select(Member, Program.config_version, *columns).join(Program, Program.id == Member.program_id)
            .options(lazyload(Member.program_row), lazyload(Member.tier_row)))


def use_config(session: Session, member: Member, version: int) -> Member:
    """The member reads their program (and tier) from the cached configuration at `version` from now on."""
    member.program_config = program_config(session, member.program_id, version)
    return member


def program_config(session: Session, program_id: int, version: int) -> ProgramConfig:
    """The program's configuration at `version` (read in the caller's statement); loaded on a miss."""
    config = _cache.get(program_id)
    if config is not None and config.config_version == version:
        return config
    config = load_config(session, program_id)
    if len(_cache) >= MAX_PROGRAMS:
        _cache.clear()
    _cache[program_id] = config  # a newer version committed meanwhile is kept under its own version
    return config


def load_config(session: Session, program_id: int) -> ProgramConfig:
    program = session.scalars(select(Program).where(Program.id == program_id).options(
        selectinload(Program.tiers), selectinload(Program.rewards))
        .execution_options(populate_existing=True)).one()  # as committed (or flushed by this transaction) now
    return config_of(program)


def config_of(program: Program) -> ProgramConfig:
    """The values of a loaded program (with its tiers and rewards)."""
    columns = {attr.key: getattr(program, attr.key) for attr in inspect(Program).column_attrs}
    tiers = tuple(TierValue(t.id, t.program_id, t.name, t.threshold, t.multiplier, t.perks) for t in program.tiers)
    rewards = tuple(RewardValue(r.id, r.program_id, r.name, r.points_cost, r.active, r.retired_at, r.created_at)
                    for r in program.rewards)
    return ProgramConfig(columns, tiers, rewards)


def _frozen(value):
    """JSON values made read-only: the same object is shared by every request of the process."""
    if isinstance(value, dict):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value
