"""Wallet's fixed card texts per language, and the `pass.strings` files that carry them.

Labels and fixed texts on the card are keys; Wallet resolves them through
`<locale>.lproj/pass.strings` in the device language, so the card reads natively.
Keys are dotted (`balance.label`) so a merchant text such as a reward name can
never collide with one by accident (Wallet also looks field values up as keys).
"""

from collections.abc import Iterable
from datetime import date
from functools import lru_cache

FALLBACK_LOCALE = "en"

TRANSLATIONS: dict[str, dict[str, str]] = {
    "en": {
        "balance.label": "Points",
        "balance.changed": "Your points balance is now %@.",
        "tier.label": "Tier",
        "tier.changed": "Your tier is now %@.",
        "tier.none": "Member",
        "member.label": "Member",
        "next_reward.label": "Next reward",
        "points_to_reward.label": "Points to go",
        "next_tier.label": "Next tier",
        "points_to_tier.label": "Points to next tier",
        "goal.reached": "Ready!",
        "how_to_use.label": "How to use",
        "how_to_use.text": (
            "Show this card at checkout. The staff scan the code to add points "
            "or redeem your rewards."
        ),
        "updates.label": "Automatic updates",
        "updates.text": (
            "Your points and tier update on this card after every visit. Keep "
            "Automatic Updates turned on for this pass to get a notification."
        ),
        "program.label": "Program",
        "program_info.label": "About the program",
        "terms.label": "Terms and conditions",
        "expiring.label": "Expiring points",
        "pending.label": "Pending points",
        "promotion.label": "Promotion",
        "perks.label": "Tier benefits",
        "stamps.label": "Stamps",
        "stamps.changed": "You now have %@ stamps.",
        "vouchers.label": "Your vouchers",
    },
    "ja": {
        "balance.label": "ポイント",
        "balance.changed": "保有ポイントが%@ポイントになりました。",
        "tier.label": "会員ランク",
        "tier.changed": "会員ランクが%@になりました。",
        "tier.none": "一般",
        "member.label": "お名前",
        "next_reward.label": "次の特典",
        "points_to_reward.label": "特典まであと",
        "next_tier.label": "次のランク",
        "points_to_tier.label": "次のランクまであと",
        "goal.reached": "達成！",
        "how_to_use.label": "ご利用方法",
        "how_to_use.text": (
            "お会計の際にこのカードをご提示ください。スタッフがコードを読み取り、"
            "ポイントの付与や特典のご利用を行います。"
        ),
        "updates.label": "自動更新",
        "updates.text": (
            "ご来店のたびに、ポイントと会員ランクがこのカードに自動で反映されます。"
            "通知を受け取るには、このパスの「自動アップデート」をオンにしてください。"
        ),
        "program.label": "会員プログラム",
        "program_info.label": "プログラムについて",
        "terms.label": "利用規約",
        "expiring.label": "失効予定のポイント",
        "pending.label": "保留中のポイント",
        "promotion.label": "キャンペーン",
        "perks.label": "ランク特典",
        "stamps.label": "スタンプ",
        "stamps.changed": "スタンプが%@個になりました。",
        "vouchers.label": "お持ちのクーポン",
    },
    "ko": {
        "balance.label": "포인트",
        "balance.changed": "현재 포인트는 %@점입니다.",
        "tier.label": "회원 등급",
        "tier.changed": "회원 등급이 변경되었습니다: %@",
        "tier.none": "일반",
        "member.label": "이름",
        "next_reward.label": "다음 혜택",
        "points_to_reward.label": "혜택까지 남은 포인트",
        "next_tier.label": "다음 등급",
        "points_to_tier.label": "다음 등급까지 남은 포인트",
        "goal.reached": "달성!",
        "how_to_use.label": "이용 방법",
        "how_to_use.text": (
            "결제할 때 이 카드를 보여 주세요. 직원이 코드를 스캔해 포인트를 "
            "적립하거나 혜택을 사용할 수 있습니다."
        ),
        "updates.label": "자동 업데이트",
        "updates.text": (
            "방문할 때마다 포인트와 회원 등급이 이 카드에 자동으로 반영됩니다. "
            "알림을 받으려면 이 패스의 '자동 업데이트'를 켜 두세요."
        ),
        "program.label": "멤버십 프로그램",
        "program_info.label": "프로그램 안내",
        "terms.label": "이용 약관",
        "expiring.label": "소멸 예정 포인트",
        "pending.label": "적립 대기 포인트",
        "promotion.label": "프로모션",
        "perks.label": "등급 혜택",
        "stamps.label": "스탬프",
        "stamps.changed": "스탬프가 %@개가 되었습니다.",
        "vouchers.label": "보유 쿠폰",
    },
}

LOCALES: tuple[str, ...] = tuple(TRANSLATIONS)  # the languages a card can speak: en, ja, ko

# Sentences with a number and a day, written in the member's language (a label cannot take arguments).
POINTS_NOTICES: dict[str, dict[str, str]] = {
    "en": {"expiring": "{points} points expire on {day}", "pending": "{points} pending until {day}"},
    "ja": {"expiring": "{day}に{points}ポイントが失効します", "pending": "{points}ポイントは{day}から利用できます"},
    "ko": {"expiring": "{day}에 {points}포인트가 소멸됩니다",
           "pending": "{points}포인트는 {day}부터 사용할 수 있습니다"},
}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def points_notice(kind: str, locale: str, points: int, day: date) -> str:
    """"300 points expire on 30 Jun", "6月30日に300ポイントが失効します", ... (`kind`: expiring or pending)."""
    language = resolve_locale(locale)
    text = {"en": f"{day.day} {_MONTHS_EN[day.month - 1]}", "ja": f"{day.month}月{day.day}日",
            "ko": f"{day.month}월 {day.day}일"}[language]
    return POINTS_NOTICES[language][kind].format(points=f"{points:,}", day=text)

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def resolve_locale(locale: str) -> str:
    """Map `ja`, `ja-JP` or `ja_JP` to a table we ship; anything else reads English."""
    language = locale.replace("_", "-").split("-")[0].lower()
    return language if language in TRANSLATIONS else FALLBACK_LOCALE


def escape_strings_text(text: str) -> str:
    """Quote a key or value for a `.strings` file (backslash, quote, newlines)."""
    return "".join(_ESCAPES.get(char, char) for char in text)


def encode_strings(table: dict[str, str]) -> bytes:
    """Serialise one table as a `.strings` file in UTF-8 without a BOM.

    Apple reads UTF-8 or UTF-16; UTF-8 is what widely used generators
    (passkit-generator) ship, keeps the mostly-ASCII file small, and diffs cleanly.
    """
    lines = [
        f'"{escape_strings_text(key)}" = "{escape_strings_text(value)}";'
        for key, value in sorted(table.items())
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def read_strings(data: bytes) -> dict[str, str]:
    """Parse a `.strings` file written by `encode_strings` (no comments support)."""
    text = data.decode("utf-8-sig")
    table: dict[str, str] = {}
    position = 0
    while True:
        key, position = _read_quoted(text, position)
        if key is None:
            return table
        position = _expect(text, position, "=")
        value, position = _read_quoted(text, position)
        if value is None:
            raise ValueError(f"missing value for key {key!r}")
        position = _expect(text, position, ";")
        table[key] = value


def _read_quoted(text: str, position: int) -> tuple[str | None, int]:
    """Read one quoted, escaped string; None at the end of the file."""
    while position < len(text) and text[position].isspace():
        position += 1
    if position == len(text):
        return None, position
    if text[position] != '"':
        raise ValueError(f"expected '\"' at offset {position}")
    chars: list[str] = []
    position += 1
    while position < len(text) and text[position] != '"':
        if text[position] == "\\" and position + 1 < len(text):
            position += 1
            chars.append(_UNESCAPES.get(text[position], text[position]))
        else:
            chars.append(text[position])
        position += 1
    if position == len(text):
        raise ValueError("unterminated string")
    return "".join(chars), position + 1


def _expect(text: str, position: int, token: str) -> int:
    """Skip whitespace and one expected punctuation character."""
    while position < len(text) and text[position].isspace():
        position += 1
    if not text.startswith(token, position):
        raise ValueError(f"expected {token!r} at offset {position}")
    return position + 1


def pass_strings(locales: Iterable[str]) -> dict[str, bytes]:
    """`{"<lang>.lproj/pass.strings": bytes}` for the locales, English always included.

    English is always shipped so a device in any other language resolves the keys
    instead of showing them raw.
    """
    return dict(_pass_strings(tuple(locales)))


@lru_cache(maxsize=64)
def _pass_strings(locales: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """Memoised core of `pass_strings`: a pure function of the locale list."""
    resolved = dict.fromkeys([FALLBACK_LOCALE, *map(resolve_locale, locales)])
    return tuple(
        (f"{locale}.lproj/pass.strings", encode_strings(TRANSLATIONS[locale]))
        for locale in resolved
    )
