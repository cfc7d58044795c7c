"""Outgoing webhooks (admins): endpoints, the secret shown once, deliveries and tries."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "nav.webhooks": "Webhooks",
        "hooks.title": "Webhooks",
        "hooks.lead": (
            "kakin POSTs events (invoice paid, subscription canceled...) to these URLs, "
            "signed with each endpoint's secret."
        ),
        "hooks.url": "URL",
        "hooks.description": "Description (optional)",
        "hooks.events": "Event types",
        "hooks.all_events": "All event types",
        "hooks.state": "State",
        "hooks.enabled": "enabled",
        "hooks.disabled": "disabled",
        "hooks.gone": "the receiver answered 410 Gone",
        "hooks.created": "Created",
        "hooks.empty": "No webhook endpoints yet. Add one below to receive events.",
        "hooks.new": "Add an endpoint",
        "hooks.create": "Add endpoint",
        "hooks.error.form": "Give an https URL and choose at least one event type.",
        "hooks.secret_title": "Endpoint added",
        "hooks.rotated_title": "New signing secret",
        "hooks.secret": "Signing secret",
        "hooks.secret_lead": (
            "Copy the signing secret now: it is shown this once and cannot be read again."
        ),
        "hooks.rotated_lead": (
            "The old secret goes on signing beside the new one for 24 hours: deliveries "
            "meanwhile carry both signatures."
        ),
        "hooks.secret_hint": "Check each delivery's webhook-signature header with it.",
        "hooks.to_endpoint": "To the endpoint",
        "hooks.endpoint": "Webhook endpoint",
        "hooks.rotating": "Old secret signs until",
        "hooks.disable": "Disable",
        "hooks.enable": "Enable",
        "hooks.rotate": "Rotate secret",
        "hooks.rotate_hint": (
            "Disabling stops deliveries at their next try; a new secret is shown once."
        ),
        "hooks.deliveries": "Deliveries",
        "hooks.no_deliveries": "No deliveries yet.",
        "hooks.no_tries": "Not tried yet.",
        "hooks.tries": "{n} tries",
        "hooks.resends": "resent {n}×",
        "hooks.resend": "Resend",
        "hooks.try": "Try",
        "hooks.run": "resend {run}",
        "hooks.when": "When",
        "hooks.outcome": "Outcome",
        "hooks.http": "HTTP",
        "hooks.duration": "Time",
        "hooks.response": "Response",
        "hooks.status.pending": "pending",
        "hooks.status.delivered": "delivered",
        "hooks.status.failed": "failed",
        "hooks.status.skipped": "skipped",
        "hooks.done.enabled": "The endpoint is enabled.",
        "hooks.done.disabled": "The endpoint is disabled.",
        "hooks.done.resent": "The delivery is being sent again.",
    },
    "ja": {
        "nav.webhooks": "Webhook",
        "hooks.title": "Webhook",
        "hooks.lead": (
            "イベント（請求書の支払い、サブスクリプションの解約など）を"
            "これらの URL に POST します。"
            "各エンドポイントのシークレットで署名されます。"
        ),
        "hooks.url": "URL",
        "hooks.description": "説明（任意）",
        "hooks.events": "イベントの種類",
        "hooks.all_events": "すべてのイベント",
        "hooks.state": "状態",
        "hooks.enabled": "有効",
        "hooks.disabled": "無効",
        "hooks.gone": "受信側が 410 Gone を返しました",
        "hooks.created": "作成日時",
        "hooks.empty": "Webhook エンドポイントはまだありません。下のフォームから追加してください。",
        "hooks.new": "エンドポイントを追加",
        "hooks.create": "追加する",
        "hooks.error.form": "https の URL を入力し、イベントの種類を1つ以上選んでください。",
        "hooks.secret_title": "エンドポイントを追加しました",
        "hooks.rotated_title": "新しい署名シークレット",
        "hooks.secret": "署名シークレット",
        "hooks.secret_lead": "署名シークレットを今コピーしてください。表示はこの一度だけです。",
        "hooks.rotated_lead": (
            "古いシークレットも24時間は並行して署名に使われ、その間の配信には両方の署名が付きます。"
        ),
        "hooks.secret_hint": "各配信の webhook-signature ヘッダーをこれで検証してください。",
        "hooks.to_endpoint": "エンドポイントへ",
        "hooks.endpoint": "Webhook エンドポイント",
        "hooks.rotating": "古いシークレットの有効期限",
        "hooks.disable": "無効にする",
        "hooks.enable": "有効にする",
        "hooks.rotate": "シークレットを再発行",
        "hooks.rotate_hint": (
            "無効にすると次の試行から配信を止めます。新しいシークレットは一度だけ表示されます。"
        ),
        "hooks.deliveries": "配信",
        "hooks.no_deliveries": "配信はまだありません。",
        "hooks.no_tries": "まだ試行していません。",
        "hooks.tries": "試行 {n} 回",
        "hooks.resends": "再送 {n} 回",
        "hooks.resend": "再送",
        "hooks.try": "試行",
        "hooks.run": "再送{run}",
        "hooks.when": "日時",
        "hooks.outcome": "結果",
        "hooks.http": "HTTP",
        "hooks.duration": "所要時間",
        "hooks.response": "応答",
        "hooks.status.pending": "配信中",
        "hooks.status.delivered": "配信済み",
        "hooks.status.failed": "失敗",
        "hooks.status.skipped": "スキップ",
        "hooks.done.enabled": "エンドポイントを有効にしました。",
        "hooks.done.disabled": "エンドポイントを無効にしました。",
        "hooks.done.resent": "配信を再送しています。",
    },
}
