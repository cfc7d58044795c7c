"""The admins' pages: API keys and staff (the list, inviting, disabling, two-factor resets)."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "nav.api_keys": "API keys",
        "keys.title": "API keys",
        "keys.lead": (
            "Keys let other systems (your shop, scripts, finance tools) call the kakin HTTP API. "
            "Each key has the rights of its role."
        ),
        "keys.name": "Name",
        "keys.name_hint": "e.g. shop backend",
        "keys.role": "Role",
        "keys.key": "Key",
        "keys.created": "Created",
        "keys.last_used": "Last used",
        "keys.state": "State",
        "keys.never": "never",
        "keys.active": "active",
        "keys.revoked": "revoked {when}",
        "keys.revoke": "Revoke",
        "keys.new": "New key",
        "keys.create": "Create key",
        "keys.empty": "No API keys yet. Create one below for each system that calls the API.",
        "keys.name_missing": "Give the key a name saying who uses it.",
        "keys.role_unknown": "Choose one of the roles offered.",
        "keys.created_title": "Key created",
        "keys.created_lead": (
            "Copy this key now and store it in the system that uses it: it is shown only this "
            "once. kakin keeps only its fingerprint and cannot show it again."
        ),
        "keys.copy_hint": "Select the key and copy it (Ctrl+C / ⌘C, or long-press on a phone).",
        "keys.use_hint": "Send it as a header: Authorization: Bearer <key>",
        "keys.back": "Back to API keys",
        "keys.revoke_title": "Revoke this key?",
        "keys.revoke_lead": (
            "Requests made with “{name}” ({prefix}…) will be refused from now on. "
            "This cannot be undone; a system still using it needs a new key."
        ),
        "keys.revoke_confirm": "Revoke the key",
        "keys.revoked_done": "The key {prefix}… has been revoked.",
        "keys.already_revoked": "This key was revoked on {when}.",
        "keys.cancel": "Cancel",
        "keys.role.service": "service: a shop’s backend",
        "keys.role.support": "support: support actions",
        "keys.role.finance": "finance: revenue reports only",
        "keys.role.admin": "admin: everything",
        "staff.title": "Staff",
        "staff.lead": "People who may sign in to this console, and their role.",
        "staff.email": "Email",
        "staff.name": "Name",
        "staff.role": "Role",
        "staff.locale": "Language",
        "staff.two_factor": "Two-step",
        "staff.state": "State",
        "staff.last_sign_in": "Last sign-in",
        "staff.actions": "Actions",
        "staff.on": "on",
        "staff.off": "off",
        "staff.active": "active",
        "staff.disabled": "disabled",
        "staff.you": "you",
        "staff.disable": "Disable",
        "staff.reset_2fa": "Reset two-step",
        "staff.invite": "Invite a staff member",
        "staff.invite_submit": "Invite",
        "staff.invite_hint": (
            "They get a temporary password, shown to you once, to hand over in person or by "
            "phone; at their first sign-in they set up two-step verification."
        ),
        "staff.locale.ja": "日本語",
        "staff.locale.en": "English",
        "staff.email_taken": "A staff member with the email {email} exists already.",
        "staff.invalid": "Choose one of the roles and languages offered.",
        "staff.invited_title": "Staff member invited",
        "staff.invited_lead": (
            "{name} ({email}) can now sign in as {role}. Give them this temporary password: it "
            "is shown only this once. They should change it on their Password page."
        ),
        "staff.password": "Temporary password",
        "staff.copy_hint": "Select the password and copy it; do not send it by email.",
        "staff.sign_in_at": "They sign in at {url}",
        "staff.back": "Back to staff",
        "staff.disable_title": "Disable {name}?",
        "staff.disable_lead": (
            "{name} ({email}) will be signed out everywhere now and cannot sign in again."
        ),
        "staff.disable_confirm": "Disable the account",
        "staff.disable_own": (
            "You cannot disable your own account. Another admin can, if it is really needed."
        ),
        "staff.reset-2fa_title": "Reset two-step verification of {name}?",
        "staff.reset-2fa_lead": (
            "Use this when {name} ({email}) has lost their phone. Their authenticator and "
            "recovery codes stop working and they are signed out; at their next sign-in they "
            "set up two-step verification again."
        ),
        "staff.reset-2fa_confirm": "Reset two-step verification",
        "staff.done.disable": "{email} has been disabled and signed out everywhere.",
        "staff.done.reset-2fa": (
            "Two-step verification of {email} has been reset; they set it up again at their "
            "next sign-in."
        ),
        "staff.already_disabled": "This account was disabled on {when}.",
        "error.email_invalid": "That is not an email address.",
        "error.name_invalid": "Enter a name of at most {limit} characters.",
    },
    "ja": {
        "nav.api_keys": "APIキー",
        "keys.title": "APIキー",
        "keys.lead": (
            "ほかのシステム（ショップ、スクリプト、経理ツールなど）が kakin の HTTP API を"
            "呼び出すためのキーです。各キーにはロールの権限があります。"
        ),
        "keys.name": "名前",
        "keys.name_hint": "例：ショップのバックエンド",
        "keys.role": "ロール",
        "keys.key": "キー",
        "keys.created": "作成日時",
        "keys.last_used": "最終使用",
        "keys.state": "状態",
        "keys.never": "未使用",
        "keys.active": "有効",
        "keys.revoked": "失効 {when}",
        "keys.revoke": "失効させる",
        "keys.new": "新しいキー",
        "keys.create": "キーを作成",
        "keys.empty": "APIキーはまだありません。API を呼び出すシステムごとに下で作成してください。",
        "keys.name_missing": "キーを使う人・システムがわかる名前を入力してください。",
        "keys.role_unknown": "表示されているロールから選んでください。",
        "keys.created_title": "キーを作成しました",
        "keys.created_lead": (
            "このキーを今すぐコピーし、使うシステムに保存してください。表示されるのは今回だけです。"
            "kakin はキーの指紋だけを保存し、再表示できません。"
        ),
        "keys.copy_hint": (
            "キーを選択してコピーしてください（Ctrl+C / ⌘C、スマートフォンでは長押し）。"
        ),
        "keys.use_hint": "ヘッダーで送ります：Authorization: Bearer <キー>",
        "keys.back": "APIキー一覧へ戻る",
        "keys.revoke_title": "このキーを失効させますか？",
        "keys.revoke_lead": (
            "「{name}」（{prefix}…）を使ったリクエストは今後すべて拒否されます。"
            "元に戻せません。まだ使っているシステムには新しいキーが必要です。"
        ),
        "keys.revoke_confirm": "キーを失効させる",
        "keys.revoked_done": "キー {prefix}… を失効させました。",
        "keys.already_revoked": "このキーは {when} に失効済みです。",
        "keys.cancel": "キャンセル",
        "keys.role.service": "service：ショップのバックエンド",
        "keys.role.support": "support：サポート操作",
        "keys.role.finance": "finance：売上レポートの閲覧のみ",
        "keys.role.admin": "admin：すべての操作",
        "staff.title": "スタッフ",
        "staff.lead": "この管理画面にログインできる人と、そのロールです。",
        "staff.email": "メールアドレス",
        "staff.name": "名前",
        "staff.role": "ロール",
        "staff.locale": "言語",
        "staff.two_factor": "2段階認証",
        "staff.state": "状態",
        "staff.last_sign_in": "最終ログイン",
        "staff.actions": "操作",
        "staff.on": "有効",
        "staff.off": "未設定",
        "staff.active": "有効",
        "staff.disabled": "無効",
        "staff.you": "あなた",
        "staff.disable": "無効にする",
        "staff.reset_2fa": "2段階認証をリセット",
        "staff.invite": "スタッフを招待",
        "staff.invite_submit": "招待する",
        "staff.invite_hint": (
            "仮パスワードが一度だけ表示されます。対面や電話で本人に伝えてください。"
            "初回ログイン時に2段階認証を設定します。"
        ),
        "staff.locale.ja": "日本語",
        "staff.locale.en": "English",
        "staff.email_taken": "メールアドレス {email} のスタッフはすでに登録されています。",
        "staff.invalid": "表示されているロールと言語から選んでください。",
        "staff.invited_title": "スタッフを招待しました",
        "staff.invited_lead": (
            "{name}（{email}）が{role}としてログインできるようになりました。"
            "この仮パスワードを伝えてください。表示されるのは今回だけです。"
            "本人にはパスワードのページで変更してもらってください。"
        ),
        "staff.password": "仮パスワード",
        "staff.copy_hint": "パスワードを選択してコピーしてください。メールでは送らないでください。",
        "staff.sign_in_at": "ログインページ：{url}",
        "staff.back": "スタッフ一覧へ戻る",
        "staff.disable_title": "{name} を無効にしますか？",
        "staff.disable_lead": (
            "{name}（{email}）はすべての端末でただちにログアウトされ、以後ログインできなくなります。"
        ),
        "staff.disable_confirm": "アカウントを無効にする",
        "staff.disable_own": (
            "自分のアカウントは無効にできません。必要な場合はほかの管理者に依頼してください。"
        ),
        "staff.reset-2fa_title": "{name} の2段階認証をリセットしますか？",
        "staff.reset-2fa_lead": (
            "{name}（{email}）がスマートフォンをなくしたときに使います。認証アプリと"
            "リカバリーコードが使えなくなり、ログアウトされます。次回ログイン時に"
            "2段階認証を設定し直します。"
        ),
        "staff.reset-2fa_confirm": "2段階認証をリセット",
        "staff.done.disable": "{email} を無効にし、すべての端末でログアウトさせました。",
        "staff.done.reset-2fa": (
            "{email} の2段階認証をリセットしました。次回ログイン時に設定し直します。"
        ),
        "staff.already_disabled": "このアカウントは {when} に無効化されています。",
        "error.email_invalid": "メールアドレスの形式ではありません。",
        "error.name_invalid": "名前を{limit}文字以内で入力してください。",
    },
}
