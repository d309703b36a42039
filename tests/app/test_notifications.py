"""What the member reads on their phone: natural sentences in their own language, with the event's facts."""

import pytest

from app.domain.notifications import notice_for


@pytest.mark.parametrize("locale, title, body", [
    ("en", "Welcome to Gold!", "You've reached Gold status. Enjoy your new benefits."),
    ("ja", "Goldランクになりました", "おめでとうございます！Goldランクに昇格しました。新しい特典をお楽しみください。"),
    ("ko", "Gold 등급이 되었어요", "축하합니다! Gold 등급으로 올라갔어요. 새로운 혜택을 누려 보세요."),
])
def test_tier_change_in_each_language(locale, title, body):
    assert notice_for("tier.changed", {"tier": "Gold", "previous_tier": "Bronze"}, locale) == (title, body)


def test_reward_unlocked_names_the_reward():
    notice = notice_for("reward.unlocked", {"reward": {"id": 3, "name": "Free coffee"}}, "en")
    assert notice.body == "You have enough points for Free coffee. Show your card to redeem it."


@pytest.mark.parametrize("locale, data, body", [
    ("en", {"points": 1200, "expires_at": "2026-03-05T00:00:00+00:00"},
     "Your 1,200 points will expire on March 5. Don't miss out!"),
    ("en", {"points": 1}, "Your 1 point will expire soon. Don't miss out!"),
    ("ja", {"points": 300, "expires_at": "2026-03-05"}, "300ポイントは3月5日に失効します。お早めにご利用ください。"),
    ("ko", {"points": 300, "expires_at": "2026-03-05"}, "300포인트가 3월 5일에 소멸돼요. 그 전에 사용하세요."),
])
def test_points_expiring_says_how_many_and_when(locale, data, body):
    assert notice_for("points.expiring", data, locale).body == body


def test_a_campaign_speaks_the_members_language_then_english():
    data = {"title": {"en": "Happy hour", "ja": "ハッピーアワー"}, "body": {"en": "2x points until 6pm"}}
    assert notice_for("campaign.message", data, "ja") == ("ハッピーアワー", "2x points until 6pm")
    assert notice_for("campaign.message", {"title": "Sale", "body": "Today only"}, "ko") == ("Sale", "Today only")
    assert notice_for("campaign.message", {}, "en") is None


def test_an_unknown_locale_falls_back_to_english():
    assert notice_for("tier.changed", {"tier": "Gold"}, "fr").title == "Welcome to Gold!"


def test_events_not_worth_a_notification_have_none():
    assert notice_for("points.earned", {"points": 10}, "en") is None
