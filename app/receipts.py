"""The line a till prints after an earn, a redeem or a capture, in the member's language:
"+12 points · 152 available · 48 to Free Coffee". Beside the card's own texts (passes/strings.py), which are
Wallet's and travel inside every pass; these are the till's."""

from __future__ import annotations

from passes import Goal
from passes.strings import FALLBACK_LOCALE, resolve_locale

SEPARATOR = " · "

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "earn": "+{points} {unit}",
        "spend": "-{points} {unit}",
        "change": "{signed} {unit}",
        "reward": "{reward}",
        "available": "{available} available",
        "to_reward": "{needed} to {reward}",
    },
    "ja": {
        "earn": "{points}{unit}獲得",
        "spend": "{points}{unit}利用",
        "change": "{signed}{unit}",
        "reward": "{reward}と交換",
        "available": "ご利用可能 {available}{unit}",
        "to_reward": "{reward}まであと{needed}{unit}",
    },
    "ko": {
        "earn": "{points}{unit} 적립",
        "spend": "{points}{unit} 사용",
        "change": "{signed}{unit}",
        "reward": "{reward} 교환",
        "available": "사용 가능 {available}{unit}",
        "to_reward": "{reward}까지 {needed}{unit}",
    },
}
_KIND_PHRASE = {"earn": "earn", "redeem": "spend", "capture": "spend"}  # anything else: the signed change


def receipt_line(locale: str, kind: str, points: int, available: int, next_reward: Goal | None = None,
                 reward_name: str | None = None) -> str:
    """`points` is the entry's signed change; `reward_name` the reward it redeemed, if any."""
    language = resolve_locale(locale or FALLBACK_LOCALE)
    phrases = PHRASES[language]
    parts = [phrases["reward"].format(reward=reward_name)] if reward_name else []
    parts.append(phrases[_KIND_PHRASE.get(kind, "change")].format(
        points=f"{abs(points):,}", signed=f"{points:+,}", unit=_unit(language, points)))
    parts.append(phrases["available"].format(available=f"{available:,}", unit=_unit(language, available)))
    if next_reward is not None:
        parts.append(phrases["to_reward"].format(needed=f"{next_reward.points_needed:,}", reward=next_reward.name,
                                                 unit=_unit(language, next_reward.points_needed)))
    return SEPARATOR.join(parts)


def _unit(language: str, count: int) -> str:
    if language == "en":
        return "point" if abs(count) == 1 else "points"
    return {"ja": "ポイント", "ko": "포인트"}[language]
