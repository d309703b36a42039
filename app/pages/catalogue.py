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
    # the public pages: /join/<slug> (enrollment), its poster, lost card recovery, the member's page (issue 13)
    "join.title": {"en": "Join {program}", "ja": "{program}に入会", "ko": "{program} 가입"},
    "join.intro": {"en": "Collect points with every visit. Your card lives in your phone's wallet and updates "
                         "itself.",
                   "ja": "来店ごとにポイントが貯まります。カードはスマートフォンのウォレットに入り、"
                         "自動で更新されます。",
                   "ko": "방문할 때마다 포인트가 쌓입니다. 카드는 휴대폰 지갑에 들어가며 자동으로 업데이트됩니다."},
    "join.name": {"en": "Your name", "ja": "お名前", "ko": "이름"},
    "join.email": {"en": "Email (optional: to recover a lost card)",
                   "ja": "メール（任意：カードを紛失したときの復元用）",
                   "ko": "이메일(선택: 카드를 잃어버렸을 때 복구용)"},
    "join.phone": {"en": "Phone (optional, with country code)", "ja": "電話番号（任意、国番号から）",
                   "ko": "전화번호(선택, 국가 번호 포함)"},
    "join.referral": {"en": "Referral code (optional)", "ja": "紹介コード（任意）", "ko": "추천 코드(선택)"},
    "join.consent": {"en": "I agree that {program} keeps my name and contact details for this loyalty program. I "
                           "can ask for them to be deleted at any time.",
                     "ja": "{program}がこのポイントプログラムのために私の氏名と連絡先を保管することに同意します。"
                           "いつでも削除を依頼できます。",
                     "ko": "{program}이(가) 이 멤버십 프로그램을 위해 내 이름과 연락처를 보관하는 데 동의합니다. "
                           "언제든지 삭제를 요청할 수 있습니다."},
    "join.submit": {"en": "Get my card", "ja": "カードを受け取る", "ko": "카드 받기"},
    "join.lost": {"en": "Lost your card?", "ja": "カードを紛失しましたか？", "ko": "카드를 잃어버리셨나요?"},
    "join.error.name": {"en": "Please type your name.", "ja": "お名前を入力してください。", "ko": "이름을 입력하세요."},
    "join.error.consent": {"en": "Please tick the box to agree; without it we cannot make your card.",
                           "ja": "同意のチェックを入れてください。同意がないとカードを作成できません。",
                           "ko": "동의란에 체크하세요. 동의하지 않으면 카드를 만들 수 없습니다."},
    "join.error.email": {"en": "This email address does not look right.",
                         "ja": "メールアドレスの形式が正しくありません。",
                         "ko": "이메일 주소 형식이 올바르지 않습니다."},
    "join.error.phone": {"en": "Type the number with its country code, for example +81 90 1234 5678.",
                         "ja": "国番号から入力してください（例：+81 90 1234 5678）。",
                         "ko": "국가 번호부터 입력하세요(예: +82 10 1234 5678)."},
    "join.error.referral": {"en": "This referral code is unknown. Check it, or leave the field empty.",
                            "ja": "この紹介コードは見つかりません。確認するか、空欄にしてください。",
                            "ko": "알 수 없는 추천 코드입니다. 확인하거나 비워 두세요."},
    "join.error.too_many": {"en": "Too many attempts from this network. Wait a minute, then try again.",
                            "ja": "このネットワークからの試行が多すぎます。1分待ってからもう一度お試しください。",
                            "ko": "이 네트워크에서 시도가 너무 많습니다. 1분 후 다시 시도하세요."},
    "join.not_found": {"en": "There is no loyalty program at this address. Check the link or scan the shop's QR "
                             "code again.",
                       "ja": "このアドレスのポイントプログラムはありません。リンクを確認するか、店頭のQRコードを"
                             "もう一度読み取ってください。",
                       "ko": "이 주소에는 멤버십 프로그램이 없습니다. 링크를 확인하거나 매장의 QR 코드를 다시 "
                             "스캔하세요."},
    "card.welcome": {"en": "Welcome, {name}!", "ja": "{name} 様、ようこそ！", "ko": "{name}님, 환영합니다!"},
    "card.add": {"en": "Add your card to your phone's wallet:",
                 "ja": "カードをスマートフォンのウォレットに追加してください：",
                 "ko": "카드를 휴대폰 지갑에 추가하세요:"},
    "card.desktop": {"en": "On a computer? Scan this code with your phone to add the card there.",
                     "ja": "パソコンをお使いですか？スマートフォンでこのコードを読み取り、カードを追加してください。",
                     "ko": "컴퓨터에서 보고 계신가요? 휴대폰으로 이 코드를 스캔해 카드를 추가하세요."},
    "card.qr_alt": {"en": "QR code of your card's link", "ja": "カードのリンクのQRコード", "ko": "카드 링크의 QR 코드"},
    "card.member_page": {"en": "See my points and rewards", "ja": "ポイントと特典を見る", "ko": "포인트와 리워드 보기"},
    "badge.apple": {"en": "Add to Apple Wallet", "ja": "Apple Walletに追加", "ko": "Apple Wallet에 추가"},
    "badge.google": {"en": "Add to Google Wallet", "ja": "Google ウォレットに追加", "ko": "Google 월렛에 추가"},
    "poster.cta": {"en": "Scan to join and collect points", "ja": "読み取って入会、ポイントを貯めよう",
                   "ko": "스캔하고 가입해 포인트를 모으세요"},
    "poster.wallet": {"en": "Your card goes straight into Apple Wallet or Google Wallet.",
                      "ja": "カードはApple WalletまたはGoogle ウォレットにそのまま入ります。",
                      "ko": "카드가 Apple Wallet 또는 Google 월렛에 바로 들어갑니다."},
    "lost.heading": {"en": "Lost your card?", "ja": "カードを紛失しましたか？", "ko": "카드를 잃어버리셨나요?"},
    "lost.explain": {"en": "Type the email you joined with. We will send you a link that opens your card again.",
                     "ja": "入会時のメールアドレスを入力してください。カードを開くリンクをお送りします。",
                     "ko": "가입할 때 쓴 이메일을 입력하세요. 카드를 다시 여는 링크를 보내 드립니다."},
    "lost.email": {"en": "Email", "ja": "メールアドレス", "ko": "이메일"},
    "lost.submit": {"en": "Send me a link", "ja": "リンクを送る", "ko": "링크 보내기"},
    "lost.sent": {"en": "If this email belongs to a card of {program}, a link is on its way. It works once, for 30 "
                        "minutes. Check your spam folder too.",
                  "ja": "このメールアドレスが{program}のカードに登録されていれば、リンクを送信しました。"
                        "リンクは30分間、1回だけ使えます。迷惑メールフォルダもご確認ください。",
                  "ko": "이 이메일이 {program} 카드에 등록되어 있다면 링크를 보냈습니다. 링크는 30분 동안 한 번만 "
                        "쓸 수 있습니다. 스팸함도 확인하세요."},
    "link.heading": {"en": "Open your card", "ja": "カードを開く", "ko": "카드 열기"},
    "link.explain": {"en": "This link works once. Open your card on this device?",
                     "ja": "このリンクは1回だけ使えます。この端末でカードを開きますか？",
                     "ko": "이 링크는 한 번만 쓸 수 있습니다. 이 기기에서 카드를 열까요?"},
    "link.open": {"en": "Open my card", "ja": "カードを開く", "ko": "내 카드 열기"},
    "link.invalid": {"en": "This link was already used or has expired. Ask for a new one on the shop's page.",
                     "ja": "このリンクは使用済みか、期限切れです。お店のページから新しいリンクを依頼してください。",
                     "ko": "이미 사용했거나 만료된 링크입니다. 매장 페이지에서 새 링크를 요청하세요."},
    "me.title": {"en": "My card", "ja": "マイカード", "ko": "내 카드"},
    "me.signed_out": {"en": "You are not signed in. Open the link from your email, or ask for a new one with "
                            "\u201cLost your card?\u201d on the shop's page.",
                      "ja": "サインインしていません。メールのリンクを開くか、お店のページの「カードを紛失しましたか？」"
                            "から新しいリンクを依頼してください。",
                      "ko": "로그인되어 있지 않습니다. 이메일의 링크를 열거나, 매장 페이지의 \u201c카드를 "
                            "잃어버리셨나요?\u201d에서 새 링크를 요청하세요."},
    "me.available": {"en": "points available", "ja": "利用可能ポイント", "ko": "사용 가능 포인트"},
    "me.held": {"en": "{points} points held at a checkout", "ja": "{points} ポイントがお会計で保留中",
                "ko": "{points} 포인트가 계산 중 보류됨"},
    "me.balance": {"en": "Balance: {points}", "ja": "残高：{points}", "ko": "잔액: {points}"},
    "me.tier": {"en": "Tier", "ja": "ランク", "ko": "등급"},
    "me.no_tier": {"en": "No tier yet", "ja": "ランクなし", "ko": "등급 없음"},
    "me.next_tier": {"en": "{points} more points to {tier}", "ja": "{tier}まであと {points} ポイント",
                     "ko": "{tier}까지 {points} 포인트 남음"},
    "me.top_tier": {"en": "You are at the top tier.", "ja": "最上位ランクです。", "ko": "최고 등급입니다."},
    "me.rewards": {"en": "Rewards you can have now", "ja": "今使える特典", "ko": "지금 받을 수 있는 리워드"},
    "me.no_rewards": {"en": "No reward is within reach yet: keep collecting.",
                      "ja": "まだ交換できる特典はありません。ポイントを貯めましょう。",
                      "ko": "아직 받을 수 있는 리워드가 없습니다. 계속 모아 보세요."},
    "me.next_reward": {"en": "{points} more points for {reward}", "ja": "{reward}まであと {points} ポイント",
                       "ko": "{reward}까지 {points} 포인트 남음"},
    "me.history": {"en": "History", "ja": "履歴", "ko": "내역"},
    "me.no_history": {"en": "Nothing yet.", "ja": "まだありません。", "ko": "아직 없습니다."},
    "me.older": {"en": "Older", "ja": "さらに前", "ko": "이전 내역"},
    "me.newest": {"en": "Newest", "ja": "最新", "ko": "최신"},
    "me.refer": {"en": "Invite a friend", "ja": "友達を招待", "ko": "친구 초대"},
    "me.refer_explain": {"en": "Friends who join with your link count as your referrals.",
                         "ja": "あなたのリンクから入会した友達は、あなたの紹介として記録されます。",
                         "ko": "내 링크로 가입한 친구는 내 추천으로 기록됩니다."},
    "me.referral_link": {"en": "Your referral link", "ja": "あなたの紹介リンク", "ko": "내 추천 링크"},
    "me.share": {"en": "Share", "ja": "共有", "ko": "공유"},
    "me.copied": {"en": "Link copied.", "ja": "リンクをコピーしました。", "ko": "링크를 복사했습니다."},
    "me.copy": {"en": "Copy link", "ja": "リンクをコピー", "ko": "링크 복사"},
    "me.share_text": {"en": "Join {program} with my link:", "ja": "私のリンクから{program}に入会しよう：",
                      "ko": "내 링크로 {program}에 가입하세요:"},
    "me.card": {"en": "Your card in the wallet", "ja": "ウォレットのカード", "ko": "지갑 속 카드"},
    "kind.earn": {"en": "Earned", "ja": "獲得", "ko": "적립"},
    "kind.redeem": {"en": "Redeemed", "ja": "利用", "ko": "사용"},
    "kind.hold": {"en": "Held at checkout", "ja": "お会計で保留", "ko": "계산 중 보류"},
    "kind.capture": {"en": "Redeemed", "ja": "利用", "ko": "사용"},
    "kind.release": {"en": "Hold released", "ja": "保留を解除", "ko": "보류 해제"},
    "kind.adjust": {"en": "Adjusted by the shop", "ja": "お店による調整", "ko": "매장 조정"},
    "kind.reversal": {"en": "Refund correction", "ja": "返品による訂正", "ko": "환불 정정"},
    "kind.expire": {"en": "Expired", "ja": "失効", "ko": "소멸"},
    "kind.other": {"en": "Bonus", "ja": "ボーナス", "ko": "보너스"},
    "mail.link.subject": {"en": "Your {program} card", "ja": "{program}のカード", "ko": "{program} 카드"},
    "mail.link.body": {"en": "Hello {name},\n\nOpen your {program} card with this link. It works once, for 30 "
                             "minutes:\n{link}\n\nIf you did not ask for it, ignore this mail: nothing changes.",
                       "ja": "{name} 様\n\n次のリンクから{program}のカードを開けます。リンクは30分間、1回だけ"
                             "使えます：\n{link}\n\nお心当たりがない場合は、このメールを無視してください。",
                       "ko": "{name}님, 안녕하세요.\n\n다음 링크로 {program} 카드를 열 수 있습니다. 링크는 30분 동안 "
                             "한 번만 쓸 수 있습니다:\n{link}\n\n요청하지 않으셨다면 이 메일을 무시하세요."},
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
