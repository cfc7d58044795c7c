"""Alerts on a subscription or a customer: thresholds, firings, hard caps, the forms."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "alerts.title": "Alerts",
        "alerts.link": "Alerts and caps",
        "alerts.lead.subscription": (
            "Alerts watch this subscription's current period: its bill so far, its forecast "
            "bill, or one metric's usage. A hard cap refuses usage past it for the rest of "
            "the period."
        ),
        "alerts.lead.customer": (
            "Alerts on the customer add up all its subscriptions in the current period."
        ),
        "alerts.empty": "No alerts yet.",
        "alerts.watch.bill": "Bill so far",
        "alerts.watch.forecast": "Forecast bill",
        "alerts.watch.usage": "Usage",
        "alerts.fired": "fired",
        "alerts.quiet": "below thresholds",
        "alerts.not_yet": "not reached this period",
        "alerts.cap_reached": "cap reached",
        "alerts.cap_reached_at": "reached",
        "alerts.current": "Now",
        "alerts.budget": "Budget",
        "alerts.next": "Next threshold",
        "alerts.period": "Period",
        "alerts.hard_cap": "Hard cap",
        "alerts.recurring": "Then",
        "alerts.every": "every {step}",
        "alerts.thresholds": "Thresholds",
        "alerts.change_cap": "Change the cap",
        "alerts.new_cap": "New cap ({metric})",
        "alerts.save_cap": "Save the cap",
        "alerts.remove": "Remove this alert",
        "alerts.remove_confirm": "Remove",
        "alerts.add": "Add an alert",
        "alerts.watches": "Watches",
        "alerts.name": "Name (optional)",
        "alerts.budget_hint": (
            "Money as you read it (12.50, 3980). For usage, in the metric's unit."
        ),
        "alerts.thresholds_hint": "Percent of the budget (50%, 80%) or amounts (3000, 5000).",
        "alerts.metric": "Metric code (usage only)",
        "alerts.metric_hint": "e.g. api_calls",
        "alerts.cap_hint": "Usage only: usage past it in the period is refused.",
        "alerts.create": "Add alert",
        "alerts.done.added": "The alert was added.",
        "alerts.done.removed": "The alert was removed.",
        "alerts.done.cap": "The cap was changed; the change is in the history.",
        "alerts.error.form": (
            "Check the form: thresholds are percents of a budget or amounts, a usage alert "
            "names its metric."
        ),
        "alerts.error.reason": "Say why, for the history.",
        "alerts.error.cap": "The cap is a number of zero or more.",
    },
    "ja": {
        "alerts.title": "アラート",
        "alerts.link": "アラートと上限",
        "alerts.lead.subscription": (
            "今期の請求額（現時点）、請求見込み、または指標の利用量を監視します。"
            "ハード上限を超える利用は今期の残りのあいだ受け付けません。"
        ),
        "alerts.lead.customer": (
            "顧客のアラートは、今期のすべてのサブスクリプションの合計を監視します。"
        ),
        "alerts.empty": "アラートはまだありません。",
        "alerts.watch.bill": "現時点の請求額",
        "alerts.watch.forecast": "請求見込み",
        "alerts.watch.usage": "利用量",
        "alerts.fired": "通知済み",
        "alerts.quiet": "しきい値未満",
        "alerts.not_yet": "今期は未到達",
        "alerts.cap_reached": "上限到達",
        "alerts.cap_reached_at": "到達",
        "alerts.current": "現在",
        "alerts.budget": "予算",
        "alerts.next": "次のしきい値",
        "alerts.period": "期間",
        "alerts.hard_cap": "ハード上限",
        "alerts.recurring": "以降",
        "alerts.every": "{step}ごと",
        "alerts.thresholds": "しきい値",
        "alerts.change_cap": "上限を変更",
        "alerts.new_cap": "新しい上限（{metric}）",
        "alerts.save_cap": "上限を保存",
        "alerts.remove": "このアラートを削除",
        "alerts.remove_confirm": "削除する",
        "alerts.add": "アラートを追加",
        "alerts.watches": "監視対象",
        "alerts.name": "名前（任意）",
        "alerts.budget_hint": "金額は表示どおりに（3980、12.50）。利用量は指標の単位で。",
        "alerts.thresholds_hint": "予算に対する割合（50%, 80%）または金額（3000, 5000）。",
        "alerts.metric": "指標コード（利用量のみ）",
        "alerts.metric_hint": "例: api_calls",
        "alerts.cap_hint": "利用量のみ：今期この値を超える利用を拒否します。",
        "alerts.create": "追加する",
        "alerts.done.added": "アラートを追加しました。",
        "alerts.done.removed": "アラートを削除しました。",
        "alerts.done.cap": "上限を変更しました。変更は履歴に残ります。",
        "alerts.error.form": (
            "入力を確認してください。しきい値は予算に対する割合か金額で、"
            "利用量のアラートには指標コードが必要です。"
        ),
        "alerts.error.reason": "履歴のために理由を入力してください。",
        "alerts.error.cap": "上限は0以上の数値で入力してください。",
    },
}
