"""What challenges, badges and the leaderboard put on a member's card (`CardNotice`s, in the member's language):
one line per running challenge with the progress ("Visit 3 times in 30 days: 2/3"), the latest completion
(with a changeMessage, so Wallet tells the member when a new one comes), the badges won, and the member's rank
this month if they opted in to the leaderboard.

The rank is the one when the card was last built: the card updates when the member's own points change, not
when another member overtakes them."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from app.domain.challenges import Progress, member_progress
from app.domain.earnrules import plain
from app.domain.leaderboard import rank_of
from app.models import Challenge, Member, utcnow
from passes.storecard import CardNotice
from passes.strings import FALLBACK_LOCALE

MAX_CHALLENGE_LINES = 4  # the card's back is shared with the other features (passes.storecard.MAX_NOTICES)

# goal and window phrases: English puts the window after the goal, Japanese and Korean before it
TEXTS: dict[str, dict[str, str]] = {
    "en": {"visits": "Visit {n} times", "spend": "Spend {n} {currency}", "category": "Buy {n} × {category}",
           "days": "in {days} days", "month": "this month", "challenge": "",
           "progress": "{goal}: {progress}/{target}", "done": "{goal}: completed",
           "completed.label": "Challenge completed", "completed": "{name}: {rewards}",
           "points": "+{points} points", "badge": "badge “{badge}”",
           "badges.label": "Badges", "rank.label": "Leaderboard this month", "rank": "#{rank} · {points} points"},
    "ja": {"visits": "{n}回ご来店", "spend": "{n} {currency}のお買い上げ", "category": "{category}を{n}点お買い上げ",
           "days": "{days}日以内に", "month": "今月", "challenge": "",
           "progress": "{goal}：{progress}/{target}", "done": "{goal}：達成",
           "completed.label": "チャレンジ達成", "completed": "{name}：{rewards}",
           "points": "{points}ポイント獲得", "badge": "バッジ「{badge}」獲得",
           "badges.label": "バッジ", "rank.label": "今月のランキング", "rank": "{rank}位・{points}ポイント"},
    "ko": {"visits": "{n}회 방문", "spend": "{n} {currency} 구매", "category": "{category} {n}개 구매",
           "days": "{days}일 안에 ", "month": "이번 달 ", "challenge": "",
           "progress": "{goal}: {progress}/{target}", "done": "{goal}: 달성",
           "completed.label": "챌린지 달성", "completed": "{name}: {rewards}",
           "points": "{points}포인트 적립", "badge": "‘{badge}’ 배지 획득",
           "badges.label": "배지", "rank.label": "이번 달 랭킹", "rank": "{rank}위 · {points}포인트"},
}
SEPARATOR = {"en": ", ", "ja": "、", "ko": ", "}


def _texts(locale: str) -> dict[str, str]:
    return TEXTS.get(locale, TEXTS[FALLBACK_LOCALE])


def goal_text(challenge: Challenge, currency: str, locale: str) -> str:
    """"Visit 3 times in 30 days", "30日以内に3回ご来店", "30일 안에 3회 방문"."""
    texts = _texts(locale)
    goal = texts[challenge.goal].format(n=plain(challenge.target), currency=currency, category=challenge.category)
    window = texts[challenge.window].format(days=challenge.window_days)
    if locale in ("ja", "ko"):
        return f"{window}{goal}"
    return f"{goal} {window}".strip()


def challenge_notices(session: Session, member: Member) -> list[CardNotice]:
    """Progress per running challenge, the latest completion, badges and the member's rank."""
    locale, now = member.locale, utcnow()
    texts = _texts(locale)
    progress = member_progress(session, member, now)
    notices = [_progress_notice(item, member, texts) for item in progress[:MAX_CHALLENGE_LINES]]
    latest = max((item for item in progress if item.last_completed_at), key=lambda item: item.last_completed_at,
                 default=None)
    if latest is not None:
        notices.append(_completed_notice(latest, texts, locale))
    if member.badges:
        notices.append(CardNotice(key="badges", label=texts["badges.label"],
                                  text=SEPARATOR.get(locale, ", ").join(member.badges)))
    standing = rank_of(session, member, now)
    if standing is not None:
        notices.append(CardNotice(key="leaderboard_rank", label=texts["rank.label"],
                                  text=texts["rank"].format(rank=standing.rank, points=standing.points)))
    return notices


def _progress_notice(item: Progress, member: Member, texts: dict[str, str]) -> CardNotice:
    challenge = item.challenge
    goal = goal_text(challenge, member.program.currency, member.locale)
    text = texts["done"].format(goal=goal) if item.done else texts["progress"].format(
        goal=goal, progress=plain(min(item.progress, Decimal(challenge.target))), target=plain(challenge.target))
    return CardNotice(key=f"challenge_{challenge.id}", label=challenge.name, text=text)


def _completed_notice(item: Progress, texts: dict[str, str], locale: str) -> CardNotice:
    """Its text changes with every new completion (the count), so the changeMessage fires once for each."""
    challenge = item.challenge
    rewards = ([texts["points"].format(points=challenge.reward_points)] if challenge.reward_points else []) + \
        ([texts["badge"].format(badge=challenge.badge)] if challenge.badge else [])
    text = texts["completed"].format(name=challenge.name, rewards=SEPARATOR.get(locale, ", ").join(rewards))
    if item.completions > 1:
        text += f" (×{item.completions})"
    return CardNotice(key="challenge_completed", label=texts["completed.label"], text=text, change_message="%@")
