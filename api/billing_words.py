"""The customer's billing page in Japanese and English (``t("key")`` in its template).

Same keys and placeholders in both languages (tests/payments/test_billing_page.py
checks); the page is in the customer's own language (their locale), not the browser's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your billing",
        "greeting": "{name}",
        "plan": "Plan",
        "status": "Status",
        "period": "This period",
        "status.active": "Active",
        "status.trialing": "Trial",
        "status.past_due": "Payment due",
        "status.suspended": "Suspended",
        "status.paused": "Paused",
        "status.canceled": "Canceled",
        "status.incomplete": "Incomplete",
        "ends_on": "Ends on {date}: it will not renew.",
        "so_far.heading": "This period so far",
        "so_far.next_invoice": "Next invoice so far",
        "so_far.issued": "to be issued on {date}, tax included",
        "so_far.none": "No upcoming invoice: nothing more will be billed.",
        "so_far.unavailable": (
            "Your bill so far cannot be shown just now; please try again shortly."
        ),
        "chart.title": "Your next invoice so far against the last one",
        "chart.so_far": "Next invoice",
        "chart.last": "Last invoice",
        "chart.budget": "Your budget",
        "usage.heading": "Usage this period",
        "usage.metric": "What",
        "usage.quantity": "Used",
        "usage.amount": "Cost so far",
        "usage.none": "No metered usage this period.",
        "lines.heading": "What the next invoice holds so far",
        "lines.item": "Item",
        "lines.amount": "Amount",
        "lines.subtotal": "Subtotal",
        "lines.discount": "Discounts",
        "lines.tax": "Tax",
        "lines.total": "Total",
        "budget.heading": "Budget and alerts",
        "budget.none": "No budget is set. Alerts will tell you by email before you pass one.",
        "invoices.heading": "Invoices",
        "invoices.number": "Number",
        "invoices.period": "Period",
        "invoices.total": "Total",
        "invoices.status": "Status",
        "invoices.download": "Download",
        "invoices.none": "No invoices yet.",
        "invoice.draft": "Draft",
        "invoice.open": "Unpaid",
        "invoice.paid": "Paid",
        "invoice.void": "Void",
        "invoice.uncollectible": "Uncollectible",
        "payments.heading": "Payments",
        "payments.date": "Date",
        "payments.invoice": "Invoice",
        "payments.amount": "Amount",
        "payments.result": "Result",
        "payments.none": "No payments yet.",
        "payment.succeeded": "Paid",
        "payment.failed": "Declined",
        "payment.pending": "Pending",
        "payment.processing": "Processing",
        "payment.requires_action": "Needs action",
        "card.heading": "Card on file",
        "card.shown": "{brand} ending in {last4}",
        "card.none": "No card on file.",
        "card.unknown": "We cannot show your card just now.",
        "card.label": "New card number",
        "card.submit": "Update card",
        "card.note": (
            "Test mode: only Stripe test card numbers are accepted."
            " We never store your card number."
        ),
        "card.updated": "Your card is updated. Any unpaid invoice is charged again now.",
        "card.not_a_test_card": "Please enter a Stripe test card number.",
        "card.live": "Card entry here is for test mode only.",
        "card.unavailable": "We could not update your card just now; please try again shortly.",
        "cancel.heading": "Cancel your subscription",
        "cancel.explain": (
            "It stays active until the end of the current period ({date}), and is not billed again."
        ),
        "cancel.reason": "Why are you leaving?",
        "cancel.submit": "Cancel at period end",
        "cancel.requested": (
            "Your subscription will end at the end of this period."
            " We have emailed you a confirmation."
        ),
        "cancel.reason_needed": "Please tell us why you are canceling.",
        "cancel.refused": "This subscription cannot be canceled here. Please contact us.",
        "cancel.unavailable": "We could not cancel just now; please try again shortly.",
        "refused.title": "This link cannot be used",
        "refused.invalid": (
            "This link is not valid. Please use the link in the newest email from us."
        ),
        "refused.expired": "This link has expired.",
        "refused.no_invoice": "We have no such invoice for you.",
        "refused.send": "Email me a new link",
        "refused.send_explain": "We will send it to the email address we have for you.",
        "link.sent": "We have sent a new link to {email}. It works for 30 days.",
        "link.unavailable": "We could not send the email just now; please try again shortly.",
        "footer": "Questions about a bill? Reply to any email from us ({seller})",
    },
    "ja": {
        "title": "ご請求・お支払い",
        "greeting": "{name} 様",
        "plan": "ご契約プラン",
        "status": "状態",
        "period": "今期",
        "status.active": "ご利用中",
        "status.trialing": "お試し期間",
        "status.past_due": "お支払い待ち",
        "status.suspended": "停止中",
        "status.paused": "一時停止中",
        "status.canceled": "解約済み",
        "status.incomplete": "手続き中",
        "ends_on": "{date}で終了します（更新されません）。",
        "so_far.heading": "今期のご利用状況",
        "so_far.next_invoice": "次回のご請求（現時点）",
        "so_far.issued": "{date}発行予定・税込",
        "so_far.none": "次回のご請求はありません。",
        "so_far.unavailable": (
            "ただいまご請求見込みを表示できません。しばらくしてからもう一度お試しください。"
        ),
        "chart.title": "次回のご請求（現時点）と前回のご請求",
        "chart.so_far": "次回（現時点）",
        "chart.last": "前回のご請求",
        "chart.budget": "ご予算",
        "usage.heading": "今期のご利用量",
        "usage.metric": "項目",
        "usage.quantity": "ご利用量",
        "usage.amount": "現時点の金額",
        "usage.none": "今期の従量課金のご利用はありません。",
        "lines.heading": "次回のご請求の内訳（現時点）",
        "lines.item": "項目",
        "lines.amount": "金額",
        "lines.subtotal": "小計",
        "lines.discount": "割引",
        "lines.tax": "消費税",
        "lines.total": "合計",
        "budget.heading": "ご予算とアラート",
        "budget.none": "ご予算は設定されていません。設定すると、超える前にメールでお知らせします。",
        "invoices.heading": "請求書",
        "invoices.number": "請求書番号",
        "invoices.period": "ご利用期間",
        "invoices.total": "合計",
        "invoices.status": "状態",
        "invoices.download": "ダウンロード",
        "invoices.none": "請求書はまだありません。",
        "invoice.draft": "下書き",
        "invoice.open": "未払い",
        "invoice.paid": "お支払い済み",
        "invoice.void": "無効",
        "invoice.uncollectible": "回収不能",
        "payments.heading": "お支払い履歴",
        "payments.date": "日付",
        "payments.invoice": "請求書",
        "payments.amount": "金額",
        "payments.result": "結果",
        "payments.none": "お支払いの履歴はまだありません。",
        "payment.succeeded": "完了",
        "payment.failed": "失敗",
        "payment.pending": "処理待ち",
        "payment.processing": "処理中",
        "payment.requires_action": "要対応",
        "card.heading": "登録カード",
        "card.shown": "{brand}（下4桁 {last4}）",
        "card.none": "カードは登録されていません。",
        "card.unknown": "ただいまカード情報を表示できません。",
        "card.label": "新しいカード番号",
        "card.submit": "カードを更新",
        "card.note": (
            "テストモード: Stripe のテストカード番号のみ受け付けます。"
            "カード番号は当社では保存しません。"
        ),
        "card.updated": (
            "カードを更新しました。未払いのご請求があれば、ただちに再度お支払いを試みます。"
        ),
        "card.not_a_test_card": "Stripe のテストカード番号を入力してください。",
        "card.live": "ここでのカード入力はテストモード専用です。",
        "card.unavailable": (
            "ただいま更新できませんでした。しばらくしてからもう一度お試しください。"
        ),
        "cancel.heading": "ご契約の解約",
        "cancel.explain": (
            "今期の終わり（{date}）まではご利用いただけます。以降のご請求はありません。"
        ),
        "cancel.reason": "解約の理由をお聞かせください",
        "cancel.submit": "今期末で解約する",
        "cancel.requested": "今期末での解約を承りました。確認のメールをお送りしました。",
        "cancel.reason_needed": "解約の理由をご記入ください。",
        "cancel.refused": "このご契約はここでは解約できません。お問い合わせください。",
        "cancel.unavailable": (
            "ただいま解約できませんでした。しばらくしてからもう一度お試しください。"
        ),
        "refused.title": "このリンクはご利用いただけません",
        "refused.invalid": (
            "このリンクは無効です。当社からの最新のメールにあるリンクをご利用ください。"
        ),
        "refused.expired": "このリンクの有効期限が切れています。",
        "refused.no_invoice": "該当する請求書はありません。",
        "refused.send": "新しいリンクをメールで受け取る",
        "refused.send_explain": "ご登録のメールアドレスにお送りします。",
        "link.sent": "{email} に新しいリンクをお送りしました。有効期限は30日間です。",
        "link.unavailable": (
            "ただいまメールを送信できませんでした。しばらくしてからもう一度お試しください。"
        ),
        "footer": "ご請求についてのお問い合わせは、当社（{seller}）からのメールにご返信ください。",
    },
}


def translator(locale: str) -> Callable[..., str]:
    """``t(key, **params)`` in the customer's language (Japanese for any ``ja*`` locale)."""
    catalog = WORDS["ja" if locale.lower().startswith("ja") else "en"]

    def t(key: str, **params: Any) -> str:
        return catalog[key].format(**params) if params else catalog[key]

    return t
