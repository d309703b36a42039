"""Every string the web pages show, in en, ja and ko: one catalogue the checkout, enrollment and dashboard pages
share. Templates call `t(key)`; the page's script gets the strings of its locale as JSON and fills `{name}`
placeholders itself. A key missing in a locale falls back to English (a test checks none is missing).

The locale: `?lang=` (the page's switcher, remembered in a cookie), else the cookie, else the browser's
Accept-Language, else English."""

from __future__ import annotations

from flask import Request

from passes.strings import FALLBACK_LOCALE, LOCALES

LANG_COOKIE = "punchpass_lang"
LANGUAGE_NAMES = {"en": "English", "ja": "日本語", "ko": "한국어"}

STRINGS: dict[str, dict[str, str]] = {
    # the checkout page: sign-in
    "checkout.title": {"en": "Checkout", "ja": "レジ", "ko": "계산대"},
    "signin.heading": {"en": "Sign this till in", "ja": "このレジにサインイン", "ko": "이 계산대 로그인"},
    "signin.explain": {"en": "Enter the pairing code from the dashboard, or a till (POS) API key. You only do this "
                                "once on this device.",
                       "ja": "ダッシュボードのペアリングコード、またはレジ用（POS）APIキーを入力してください。"
                             "この端末では一度だけです。",
                       "ko": "대시보드의 페어링 코드 또는 계산대(POS) API 키를 입력하세요. 이 기기에서 한 번만 "
                             "하면 됩니다."},
    "signin.field": {"en": "Pairing code or POS key", "ja": "ペアリングコードまたはPOSキー",
                     "ko": "페어링 코드 또는 POS 키"},
    "signin.submit": {"en": "Sign in", "ja": "サインイン", "ko": "로그인"},
    "signin.scan": {"en": "Scan pairing QR", "ja": "ペアリングQRを読み取る", "ko": "페어링 QR 스캔"},
    "signin.bad_key": {"en": "This key is unknown or revoked. Check it, or ask the owner for a pairing code.",
                       "ja": "このキーは存在しないか、無効になっています。確認するか、オーナーにペアリングコードを"
                             "依頼してください。",
                       "ko": "알 수 없거나 폐기된 키입니다. 확인하거나 관리자에게 페어링 코드를 요청하세요."},
    "signin.admin_key": {"en": "This is an admin key. A till signs in with a POS key, which can only scan, earn "
                                "and redeem.",
                         "ja": "これは管理者キーです。レジはPOSキー（読み取り・付与・利用のみ）でサインインします。",
                         "ko": "관리자 키입니다. 계산대는 조회·적립·사용만 가능한 POS 키로 로그인합니다."},
    "signin.bad_code": {"en": "This pairing code is unknown, used or expired. Ask for a new one.",
                        "ja": "このペアリングコードは無効、使用済み、または期限切れです。"
                              "新しいコードを依頼してください。",
                        "ko": "알 수 없거나 이미 사용했거나 만료된 페어링 코드입니다. 새 코드를 요청하세요."},
    "signin.expired_form": {"en": "The page was open too long. Please try again.",
                            "ja": "ページの有効期限が切れました。もう一度お試しください。",
                            "ko": "페이지가 너무 오래 열려 있었습니다. 다시 시도하세요."},
    "signin.too_many": {"en": "Too many attempts. Wait a minute, then try again.",
                        "ja": "試行回数が多すぎます。1分待ってからもう一度お試しください。",
                        "ko": "시도가 너무 많습니다. 1분 후 다시 시도하세요."},
    "signout": {"en": "Sign out", "ja": "サインアウト", "ko": "로그아웃"},
    "language": {"en": "Language", "ja": "言語", "ko": "언어"},
    # scanning
    "scan.heading": {"en": "Scan a card", "ja": "カードを読み取る", "ko": "카드 스캔"},
    "scan.camera": {"en": "Scan with camera", "ja": "カメラで読取", "ko": "카메라로 스캔"},
    "scan.stop": {"en": "Stop camera", "ja": "カメラを止める", "ko": "카메라 끄기"},
    "scan.code": {"en": "Card, phone or email", "ja": "カード・電話・メール", "ko": "카드·전화·이메일"},
    "scan.find": {"en": "Find", "ja": "検索", "ko": "찾기"},
    "scan.hint": {"en": "A barcode scanner works too: scan and it types the code here.",
                  "ja": "バーコードスキャナーも使えます。読み取るとここに入力されます。",
                  "ko": "바코드 스캐너도 됩니다. 스캔하면 여기에 입력됩니다."},
    "scan.no_camera_insecure": {
        "en": "The camera needs a secure connection: open this page over https (or on localhost). You can still "
              "type the code or use a barcode scanner.",
        "ja": "カメラには安全な接続が必要です。https（またはlocalhost）でこのページを開いてください。"
              "コードの入力やバーコードスキャナーは使えます。",
        "ko": "카메라는 보안 연결이 필요합니다. https(또는 localhost)로 이 페이지를 여세요. 코드 입력이나 바코드 "
              "스캐너는 계속 쓸 수 있습니다."},
    "scan.no_camera": {"en": "No camera could be opened ({reason}). Type the code or use a barcode scanner.",
                       "ja": "カメラを開けませんでした（{reason}）。コードを入力するか、バーコードスキャナーを"
                             "使ってください。",
                       "ko": "카메라를 열 수 없습니다({reason}). 코드를 입력하거나 바코드 스캐너를 쓰세요."},
    "scan.looking": {"en": "Point the camera at the card's QR code", "ja": "カードのQRコードにカメラを向けてください",
                     "ko": "카드의 QR 코드에 카메라를 맞추세요"},
    # the member
    "member.tier": {"en": "Tier", "ja": "ランク", "ko": "등급"},
    "member.available": {"en": "points available", "ja": "利用可能ポイント", "ko": "사용 가능 포인트"},
    "member.held": {"en": "{points} held", "ja": "{points} 保留中", "ko": "{points} 보류 중"},
    "member.rewards": {"en": "Rewards", "ja": "特典", "ko": "리워드"},
    "member.no_rewards": {"en": "This program has no rewards yet.", "ja": "このプログラムにはまだ特典がありません。",
                          "ko": "이 프로그램에는 아직 리워드가 없습니다."},
    "member.reward_cost": {"en": "{points} pts", "ja": "{points} pt", "ko": "{points} P"},
    "member.holds": {"en": "Active holds", "ja": "保留中の利用", "ko": "진행 중인 보류"},
    "member.next": {"en": "Next customer", "ja": "次のお客様", "ko": "다음 고객"},
    "earn.heading": {"en": "Earn for a purchase", "ja": "お買い上げでポイント付与", "ko": "구매 적립"},
    "earn.amount": {"en": "Amount", "ja": "金額", "ko": "금액"},
    "earn.submit": {"en": "Earn", "ja": "付与", "ko": "적립"},
    "earn.clear": {"en": "Clear", "ja": "クリア", "ko": "지우기"},
    "earn.backspace": {"en": "Delete", "ja": "削除", "ko": "삭제"},
    "earn.done": {"en": "+{points} points. {available} available now.",
                  "ja": "+{points} ポイント。現在 {available} ポイント利用可能。",
                  "ko": "+{points} 포인트. 이제 {available} 포인트 사용 가능."},
    "redeem.confirm": {"en": "Redeem {reward} for {points} points?",
                       "ja": "{reward}（{points} ポイント）を利用しますか？",
                       "ko": "{reward}({points} 포인트)를 사용할까요?"},
    "redeem.held_until": {"en": "The points are held until you confirm or cancel.",
                          "ja": "確定またはキャンセルするまでポイントは保留されます。",
                          "ko": "확인하거나 취소할 때까지 포인트가 보류됩니다."},
    "redeem.yes": {"en": "Confirm", "ja": "確定", "ko": "확인"},
    "redeem.no": {"en": "Cancel", "ja": "キャンセル", "ko": "취소"},
    "redeem.done": {"en": "{reward} redeemed. {available} points left.",
                    "ja": "{reward} を利用しました。残り {available} ポイント。",
                    "ko": "{reward} 사용 완료. {available} 포인트 남음."},
    "redeem.cancelled": {"en": "Cancelled. No points were spent.",
                         "ja": "キャンセルしました。ポイントは使われていません。",
                         "ko": "취소했습니다. 포인트는 사용되지 않았습니다."},
    "hold.capture": {"en": "Charge", "ja": "確定", "ko": "확정"},
    "hold.void": {"en": "Release", "ja": "解除", "ko": "해제"},
    "hold.expires": {"en": "until {time}", "ja": "{time} まで", "ko": "{time}까지"},
    "undo": {"en": "Undo ({seconds} s)", "ja": "取り消す（{seconds} 秒）", "ko": "실행 취소 ({seconds}초)"},
    "undo.done": {"en": "Undone. {available} points available.", "ja": "取り消しました。{available} ポイント利用可能。",
                  "ko": "취소했습니다. {available} 포인트 사용 가능."},
    "already_done": {"en": "Already done: this was recorded once, nothing was charged twice.",
                     "ja": "処理済みです：記録は一度だけで、二重には処理されていません。",
                     "ko": "이미 처리됨: 한 번만 기록되었고 두 번 처리되지 않았습니다."},
    # enrolment at the counter
    "enrol.open": {"en": "New member", "ja": "新規会員", "ko": "신규 회원"},
    "enrol.heading": {"en": "Enrol a customer", "ja": "会員登録", "ko": "회원 가입"},
    "enrol.name": {"en": "Name", "ja": "お名前", "ko": "이름"},
    "enrol.email": {"en": "Email (optional)", "ja": "メール（任意）", "ko": "이메일(선택)"},
    "enrol.phone": {"en": "Phone (optional)", "ja": "電話番号（任意）", "ko": "전화번호(선택)"},
    "enrol.program": {"en": "Program", "ja": "プログラム", "ko": "프로그램"},
    "enrol.submit": {"en": "Create card", "ja": "カードを作成", "ko": "카드 만들기"},
    "enrol.cancel": {"en": "Back", "ja": "戻る", "ko": "뒤로"},
    "enrol.done": {"en": "Welcome, {name}! Scan this with the customer's phone to add the card to the wallet.",
                   "ja": "{name} 様、ようこそ！お客様のスマートフォンでこのコードを読み取り、カードをウォレットに"
                         "追加してください。",
                   "ko": "{name}님, 환영합니다! 고객의 휴대폰으로 이 코드를 스캔해 카드를 지갑에 추가하세요."},
    "enrol.continue": {"en": "Continue to the member", "ja": "会員画面へ", "ko": "회원 화면으로"},
    # errors, as sentences
    "error.not_found": {"en": "No card found for “{code}”. Check the code and try again.",
                        "ja": "「{code}」のカードが見つかりません。コードを確認してもう一度お試しください。",
                        "ko": "“{code}”에 해당하는 카드가 없습니다. 코드를 확인하고 다시 시도하세요."},
    "error.not_enough": {"en": "Not enough points: {available} available, {needed} needed.",
                         "ja": "ポイントが足りません：利用可能 {available}、必要 {needed}。",
                         "ko": "포인트가 부족합니다: 사용 가능 {available}, 필요 {needed}."},
    "error.amount": {"en": "Type the amount of the purchase first.", "ja": "先に購入金額を入力してください。",
                     "ko": "먼저 구매 금액을 입력하세요."},
    "error.signed_out": {"en": "This till is signed out (the key was revoked or the session ended). Sign in again.",
                         "ja": "このレジはサインアウトされました（キーの無効化またはセッション終了）。"
                               "もう一度サインインしてください。",
                         "ko": "이 계산대는 로그아웃되었습니다(키 폐기 또는 세션 종료). 다시 로그인하세요."},
    "error.forbidden": {"en": "A till key cannot do this; ask the owner (an admin key can).",
                        "ja": "レジのキーではこの操作はできません。オーナー（管理者キー）に依頼してください。",
                        "ko": "계산대 키로는 할 수 없습니다. 관리자에게 요청하세요."},
    "error.hold_finished": {"en": "This hold has already ended ({status}); nothing was charged. Start again.",
                            "ja": "この保留はすでに終了しています（{status}）。何も処理されていません。"
                                  "もう一度やり直してください。",
                            "ko": "이 보류는 이미 끝났습니다({status}). 아무것도 처리되지 않았습니다. "
                                  "다시 시작하세요."},
    "error.too_many": {"en": "Too many requests. Wait {seconds} seconds and try again.",
                       "ja": "リクエストが多すぎます。{seconds} 秒待ってからもう一度お試しください。",
                       "ko": "요청이 너무 많습니다. {seconds}초 후 다시 시도하세요."},
    "error.network": {"en": "No connection to the server. Nothing was changed; try again.",
                      "ja": "サーバーに接続できません。何も変更されていません。もう一度お試しください。",
                      "ko": "서버에 연결할 수 없습니다. 아무것도 바뀌지 않았습니다. 다시 시도하세요."},
    "error.invalid": {"en": "Please check: {fields}.", "ja": "確認してください：{fields}。",
                      "ko": "확인하세요: {fields}."},
    "error.conflict": {"en": "This could not be done: {detail}", "ja": "処理できませんでした：{detail}",
                       "ko": "처리할 수 없습니다: {detail}"},
    "error.server": {"en": "Something went wrong on the server; nothing was changed. Try again.",
                     "ja": "サーバーで問題が発生しました。何も変更されていません。もう一度お試しください。",
                     "ko": "서버에 문제가 생겼습니다. 아무것도 바뀌지 않았습니다. 다시 시도하세요."},
}

# The strings a page's script needs: every key under these prefixes (templates look the rest up themselves).
SCRIPT_PREFIXES = ("scan.", "member.", "earn.", "redeem.", "hold.", "undo", "already_done", "enrol.", "error.")


def t(key: str, locale: str, **values) -> str:
    """The string in `locale` (English when that locale lacks it), with `{name}` placeholders filled."""
    entry = STRINGS[key]
    text = entry.get(locale) or entry[FALLBACK_LOCALE]
    return text.format(**values) if values else text


def strings_for(locale: str, prefixes: tuple[str, ...] = SCRIPT_PREFIXES) -> dict[str, str]:
    return {key: t(key, locale) for key in STRINGS if key.startswith(prefixes)}


def page_locale(request: Request) -> str:
    """?lang= first (the switcher), then the remembered choice, then Accept-Language, then English."""
    for choice in (request.args.get("lang"), request.cookies.get(LANG_COOKIE)):
        if choice in LOCALES:
            return choice
    return request.accept_languages.best_match(LOCALES) or FALLBACK_LOCALE
