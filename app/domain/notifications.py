"""What a member reads on their phone when something worth a notification happened: a title and a body in the
member's language (en, ja, ko), from the event's data. One home for these texts, whatever carries them (the
merchant's app via FCM today)."""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

from passes.strings import FALLBACK_LOCALE

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")

# event type -> locale -> (title, body); their {fields} come from _fields().
TEXTS = {
    "tier.changed": {
        "en": ("Welcome to {tier}!", "You've reached {tier} status. Enjoy your new benefits."),
        "ja": ("{tier}ランクになりました",
               "おめでとうございます！{tier}ランクに昇格しました。新しい特典をお楽しみください。"),
        "ko": ("{tier} 등급이 되었어요", "축하합니다! {tier} 등급으로 올라갔어요. 새로운 혜택을 누려 보세요."),
    },
    "reward.unlocked": {
        "en": ("Reward unlocked", "You have enough points for {reward}. Show your card to redeem it."),
        "ja": ("特典と交換できます", "{reward}と交換できるポイントが貯まりました。カードを提示してご利用ください。"),
        "ko": ("리워드를 받을 수 있어요", "{reward} 교환에 필요한 포인트가 모였어요. 카드를 보여 주고 사용하세요."),
    },
    "points.expiring": {
        "en": ("Points expiring soon", "Your {points} will expire {when}. Don't miss out!"),
        "ja": ("ポイントの有効期限が近づいています", "{points}は{when}失効します。お早めにご利用ください。"),
        "ko": ("포인트 소멸 예정", "{points}가 {when} 소멸돼요. 그 전에 사용하세요."),
    },
    "challenge.completed": {
        "en": ("Challenge completed!", "You completed “{challenge}”. Your reward is on your card."),
        "ja": ("チャレンジ達成！", "「{challenge}」を達成しました。特典はカードでご確認ください。"),
        "ko": ("챌린지 달성!", "‘{challenge}’ 챌린지를 달성했어요. 보상은 카드에서 확인하세요."),
    },
}


class Notice(NamedTuple):
    title: str
    body: str


def notice_for(event_type: str, data: dict, locale: str) -> Notice | None:
    """None when the event has nothing to say (an unknown type, a campaign without text for anyone)."""
    if event_type == "campaign.message":
        return _campaign(data, locale)
    if event_type == "tier.changed" and data.get("upgrade") is False:
        return None  # the texts congratulate; a move down (a reversed earn) is not worth a buzz
    texts = TEXTS.get(event_type)
    if texts is None:
        return None
    title, body = texts.get(locale) or texts[FALLBACK_LOCALE]
    fields = _fields(data, locale if locale in texts else FALLBACK_LOCALE)
    return Notice(title.format(**fields), body.format(**fields))


def _fields(data: dict, locale: str) -> dict:
    return {"tier": _name(data.get("tier")), "reward": _name(data.get("reward")),
            "challenge": _name(data.get("challenge")),
            "points": _points(data.get("points"), locale), "when": _when(data.get("expires_at"), locale)}


def _name(value) -> str:
    """`"Gold"` or `{"name": "Gold", ...}`: events carry either."""
    return str(value.get("name", "")) if isinstance(value, dict) else str(value or "")


def _points(value, locale: str) -> str:
    count = int(value or 0)
    if locale == "en":
        return f"{count:,} point" + ("" if count == 1 else "s")
    return f"{count:,}ポイント" if locale == "ja" else f"{count:,}포인트"


def _when(value, locale: str) -> str:
    """`expires_at` (ISO 8601) as people say a day: "on March 5", "3月5日に", "3월 5일에"; "soon" without one."""
    if not value:
        return {"en": "soon", "ja": "まもなく", "ko": "곧"}[locale]
    day = datetime.fromisoformat(value).date() if isinstance(value, str) else value
    if not isinstance(day, date):
        raise ValueError(f"expires_at: expected an ISO 8601 date, got {value!r}")
    return {"en": f"on {_MONTHS[day.month - 1]} {day.day}", "ja": f"{day.month}月{day.day}日に",
            "ko": f"{day.month}월 {day.day}일에"}[locale]


def _campaign(data: dict, locale: str) -> Notice | None:
    """A campaign's text is the merchant's: `title` and `body`, each a string or {locale: string}; the member's
    language first, then English, then whatever language there is."""
    title, body = _localized(data.get("title"), locale), _localized(data.get("body"), locale)
    return Notice(title, body) if title or body else None


def _localized(value, locale: str) -> str:
    if isinstance(value, dict):
        return str(value.get(locale) or value.get(FALLBACK_LOCALE) or next(iter(value.values()), "") or "")
    return str(value or "")
