"""Signing in, two-step verification, passwords, recovery codes; the console's shared
words (navigation, roles, errors)."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "console": "kakin console",
        "sign_in.title": "Sign in",
        "sign_in.email": "Email",
        "sign_in.password": "Password",
        "sign_in.submit": "Sign in",
        "sign_in.ended": "Your session has ended; please sign in again.",
        "sign_in.signed_out": "You have signed out.",
        "sign_in.wrong": "The email or password is wrong.",
        "sign_in.wait": "Too many failed sign-ins: wait {seconds} seconds and try again.",
        "sign_in.locked": "Too many failed sign-ins: try again in {minutes} minutes.",
        "two_factor.title": "Two-step verification",
        "two_factor.lead": "Enter the 6-digit code from your authenticator app.",
        "two_factor.code": "Code (or a recovery code)",
        "two_factor.submit": "Verify",
        "two_factor.wrong": "The code is wrong or has been used already.",
        "enrol.title": "Set up two-step verification",
        "enrol.lead": (
            "Scan this QR code with an authenticator app (Google Authenticator, 1Password, "
            "Microsoft Authenticator...), then enter the code it shows."
        ),
        "enrol.secret": "Or type this key into the app:",
        "enrol.code": "6-digit code",
        "enrol.submit": "Turn on",
        "enrol.done": "Two-step verification is already on for your account.",
        "recovery.title": "Recovery codes",
        "recovery.lead": (
            "Each code signs you in once if you lose your phone. Keep them somewhere safe: "
            "they are shown only now."
        ),
        "recovery.left": "You have {count} unused recovery codes.",
        "recovery.renew": "Make 10 new codes (the old ones stop working)",
        "recovery.continue": "Continue to the console",
        "password.title": "Change password",
        "password.current": "Current password",
        "password.new": "New password (at least 12 characters)",
        "password.confirm": "New password again",
        "password.submit": "Change password",
        "password.mismatch": "The two new passwords differ.",
        "password.changed": "Your password has been changed. Sessions ended elsewhere: {count}.",
        "password.temporary": (
            "Choose a password of your own first: the one you signed in with was handed to"
            " you with the invitation. The current password is that one."
        ),
        "error.password_temporary": "Change the password you were given first.",
        "home.title": "Home",
        "home.signed_in_as": "Signed in as {name} ({email}), {role}.",
        "nav.home": "Home",
        "nav.password": "Password",
        "nav.recovery": "Recovery codes",
        "nav.staff": "Staff",
        "nav.sign_out": "Sign out",
        "role.admin": "admin",
        "role.support": "support",
        "role.finance": "finance",
        "error.title": "Not allowed",
        "error.csrf": "The form has expired or did not come from this console; reload the page.",
        "error.already_sent": (
            "This form was already sent, and what it asked for was done once; it was not"
            " done again."
        ),
        "error.back": "Back to the page",
        "error.signed_out": "You are not signed in.",
        "error.role": "Your role ({role}) may not open this page.",
        "error.not_found": "There is no such page.",
        "error.internal": "Something went wrong on our side; it has been logged. Please try again.",
        "error.unreadable_form": "The form could not be read; please try again.",
        "error.keys": (
            "Two-step verification needs the payload encryption keys (KAKIN_ENCRYPTION_KEYS)."
        ),
        "error.password_short": "A password needs at least {limit} characters.",
        "error.password_long": "A password may have at most {limit} characters.",
        "error.password_common": "That password is one of the most common ones; choose another.",
        "error.password_personal": "A password may not contain your email address or name.",
        "error.password_current_wrong": "The current password is wrong.",
        "error.password_same": "The new password must differ from the current one.",
        "error.code_wrong": "The code is wrong; enter the 6 digits the app shows now.",
    },
    "ja": {
        "console": "kakin 管理画面",
        "sign_in.title": "ログイン",
        "sign_in.email": "メールアドレス",
        "sign_in.password": "パスワード",
        "sign_in.submit": "ログイン",
        "sign_in.ended": "セッションが終了しました。もう一度ログインしてください。",
        "sign_in.signed_out": "ログアウトしました。",
        "sign_in.wrong": "メールアドレスまたはパスワードが正しくありません。",
        "sign_in.wait": "ログインの失敗が続いています。{seconds} 秒待ってから再度お試しください。",
        "sign_in.locked": (
            "ログインの失敗が続いたためロックしました。{minutes} 分後に再度お試しください。"
        ),
        "two_factor.title": "2段階認証",
        "two_factor.lead": "認証アプリに表示されている6桁のコードを入力してください。",
        "two_factor.code": "コード（またはリカバリーコード）",
        "two_factor.submit": "確認",
        "two_factor.wrong": "コードが正しくないか、すでに使用されています。",
        "enrol.title": "2段階認証の設定",
        "enrol.lead": (
            "認証アプリ（Google Authenticator、1Password、Microsoft Authenticator など）で"
            "この QR コードを読み取り、表示されたコードを入力してください。"
        ),
        "enrol.secret": "または次のキーをアプリに入力してください：",
        "enrol.code": "6桁のコード",
        "enrol.submit": "有効にする",
        "enrol.done": "このアカウントの2段階認証はすでに有効です。",
        "recovery.title": "リカバリーコード",
        "recovery.lead": (
            "スマートフォンをなくしたとき、各コードで1回ログインできます。"
            "表示されるのは今回だけです。安全な場所に保管してください。"
        ),
        "recovery.left": "未使用のリカバリーコードは {count} 個です。",
        "recovery.renew": "新しいコードを10個発行する（古いコードは使えなくなります）",
        "recovery.continue": "管理画面へ進む",
        "password.title": "パスワードの変更",
        "password.current": "現在のパスワード",
        "password.new": "新しいパスワード（12文字以上）",
        "password.confirm": "新しいパスワード（確認）",
        "password.submit": "パスワードを変更",
        "password.mismatch": "新しいパスワードが一致しません。",
        "password.changed": (
            "パスワードを変更しました。ほかの端末のセッション {count} 件を終了しました。"
        ),
        "password.temporary": (
            "はじめにご自身のパスワードを設定してください。招待で受け取ったパスワードが"
            "現在のパスワードです。"
        ),
        "error.password_temporary": "はじめに受け取ったパスワードを変更してください。",
        "home.title": "ホーム",
        "home.signed_in_as": "{name}（{email}、{role}）としてログインしています。",
        "nav.home": "ホーム",
        "nav.password": "パスワード",
        "nav.recovery": "リカバリーコード",
        "nav.staff": "スタッフ",
        "nav.sign_out": "ログアウト",
        "role.admin": "管理者",
        "role.support": "サポート",
        "role.finance": "経理",
        "error.title": "表示できません",
        "error.csrf": (
            "フォームの有効期限が切れたか、この管理画面から送信されていません。"
            "ページを再読み込みしてください。"
        ),
        "error.already_sent": (
            "このフォームは送信済みです。処理は一度だけ行われ、重ねては行われていません。"
        ),
        "error.back": "元のページへ戻る",
        "error.signed_out": "ログインしていません。",
        "error.role": "あなたのロール（{role}）ではこのページを開けません。",
        "error.not_found": "そのページはありません。",
        "error.internal": "システム側で問題が発生しました（記録済み）。もう一度お試しください。",
        "error.unreadable_form": "フォームを読み取れませんでした。もう一度お試しください。",
        "error.keys": "2段階認証には暗号化キー（KAKIN_ENCRYPTION_KEYS）の設定が必要です。",
        "error.password_short": "パスワードは{limit}文字以上にしてください。",
        "error.password_long": "パスワードは{limit}文字以下にしてください。",
        "error.password_common": "よく使われるパスワードです。別のパスワードにしてください。",
        "error.password_personal": "パスワードにメールアドレスや名前を含めないでください。",
        "error.password_current_wrong": "現在のパスワードが正しくありません。",
        "error.password_same": "新しいパスワードは現在のものと異なるものにしてください。",
        "error.code_wrong": "コードが正しくありません。アプリに表示中の6桁を入力してください。",
    },
}
