"""Small HTML pieces every dashboard section shares: the page's style, notices and CSV download links."""

from __future__ import annotations

import base64
import html

import pandas as pd

#: The at-risk table shows this many rows at most; the download always holds the whole filtered list.
MAX_TABLE_ROWS = 200


def csv_download_link(table: pd.DataFrame, filename: str, label: str) -> str:
    """An HTML link that downloads ``table`` as CSV from a data URI (works offline, no server round trip)."""
    payload = base64.b64encode(table.to_csv(index=False).encode()).decode()
    return (
        f'<a class="spk-download" download="{html.escape(filename)}" '
        f'href="data:text/csv;base64,{payload}">{html.escape(label)}</a>'
    )


STYLE = """<style>
.spk-cards {display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 4px;}
.spk-card {border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 120px;}
.spk-card .spk-label {color: #666; font-size: 12px;}
.spk-card .spk-value {font-size: 22px; font-weight: 600;}
.spk-notice {border-left: 4px solid #e0a800; background: #fff8e1; padding: 8px 12px; margin: 6px 0;}
.spk-caption {color: #555; margin-top: 0;}
.spk-table {border-collapse: collapse; font-size: 13px;}
.spk-table td, .spk-table th {border-bottom: 1px solid #eee; padding: 3px 10px; text-align: right;}
.spk-at-risk td:last-child, .spk-at-risk th:last-child {text-align: left;}
.spk-verdict {white-space: normal; max-width: 60em;}
.spk-download {color: #1a6fb5; text-decoration: underline;}
</style>"""


def notice(message: str) -> str:
    """A highlighted HTML box for a section that cannot be shown (why, and what to run)."""
    return f'<div class="spk-notice">{html.escape(message)}</div>'
