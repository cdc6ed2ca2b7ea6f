"""Charts drawn on the server as inline SVG: no chart library, no script, nothing from a CDN.

Pure geometry: each function takes the figures a table beside the chart also shows and returns
escaped SVG markup (labels go through ``format_html``). The SVG scales to its container
(``viewBox``); portal.css gives it the product's colours.
"""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe


def _n(value: float) -> str:
    """A coordinate with one decimal (format_html escapes its arguments to text first)."""
    return f"{value:.1f}"


def _svg(width: int, height: int, label: str, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">'
        "<title>{}</title>{}</svg>", width, height, label, label, body,
    )


def hbars(rows: list[tuple[str, float, str]], *, label: str, width: int = 560, label_width: int = 130,
          bar_height: int = 22, gap: int = 6) -> SafeString:
    """Horizontal bars: (label, value, text shown at the bar's end), longest bar = the largest value."""
    top = max((value for _, value, _ in rows), default=0) or 1
    span = width - label_width - 70
    parts = []
    for i, (name, value, text) in enumerate(rows):
        y = i * (bar_height + gap)
        length = max(0.0, value) / top * span
        parts.append(format_html(
            '<text x="{}" y="{}" text-anchor="end">{}</text>'
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}" rx="3"></rect>'
            '<text x="{}" y="{}">{}</text>',
            label_width - 6, _n(y + bar_height * 0.7), name, label_width, y, _n(length), bar_height,
            _n(label_width + length + 5), _n(y + bar_height * 0.7), text,
        ))
    height = max(1, len(rows)) * (bar_height + gap)
    return _svg(width, height, label, mark_safe("".join(parts)))  # noqa: S308 - every part is format_html


def vbars(rows: list[tuple[str, float | None, str]], *, label: str, width: int = 560, height: int = 200,
          bottom: int = 34) -> SafeString:
    """Vertical bars of shares (0..1): (column label, share or None for no data, text above the bar)."""
    count = max(1, len(rows))
    slot = (width - 30) / count
    plot = height - bottom - 16
    parts = [format_html('<line class="axis" x1="30" y1="{}" x2="{}" y2="{}"></line>', height - bottom, width,
                         height - bottom)]
    for pct in (0.5, 1.0):
        y = height - bottom - plot * pct
        parts.append(format_html('<line class="axis" x1="30" y1="{}" x2="{}" y2="{}"></line>'
                                 '<text x="0" y="{}">{}%</text>', _n(y), width, _n(y), _n(y + 4), int(pct * 100)))
    for i, (name, share, text) in enumerate(rows):
        x = 30 + i * slot + slot * 0.15
        bar = (share or 0) * plot
        parts.append(format_html(
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}" rx="2"></rect>'
            '<text x="{}" y="{}" text-anchor="middle">{}</text>'
            '<text x="{}" y="{}" text-anchor="middle">{}</text>',
            _n(x), _n(height - bottom - bar), _n(slot * 0.7), _n(bar), _n(x + slot * 0.35),
            _n(height - bottom - bar - 3), text if share is not None else "", _n(x + slot * 0.35), height - bottom + 14,
            name,
        ))
    return _svg(width, height, label, mark_safe("".join(parts)))  # noqa: S308


def heatmap(row_labels: list[str], col_labels: list[str], matrix: list[list[int]], *, label: str,
            width: int = 560, label_width: int = 110, cell_height: int = 24) -> SafeString:
    """A grid of counts (rows x columns), each cell tinted by its share of its row, the count written in it."""
    cols = max(1, len(col_labels))
    cell_width = (width - label_width) / cols
    parts = [format_html_join("", '<text x="{}" y="12" text-anchor="middle">{}</text>',
                              ((_n(label_width + (j + 0.5) * cell_width), c) for j, c in enumerate(col_labels)))]
    for i, (name, counts) in enumerate(zip(row_labels, matrix, strict=True)):
        y = 18 + i * cell_height
        most = max(counts, default=0) or 1
        parts.append(format_html('<text x="{}" y="{}" text-anchor="end">{}</text>', label_width - 6,
                                 _n(y + cell_height * 0.65), name))
        for j, n in enumerate(counts):
            x = label_width + j * cell_width
            parts.append(format_html(
                '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill-opacity="{}"></rect>'
                '<text x="{}" y="{}" text-anchor="middle">{}</text>',
                _n(x + 1), y, _n(cell_width - 2), cell_height - 2, f"{0.08 + 0.8 * n / most:.2f}",
                _n(x + cell_width / 2), _n(y + cell_height * 0.62), n if n else "",
            ))
    height = 18 + max(1, len(row_labels)) * cell_height
    return _svg(width, height, label, mark_safe("".join(parts)))  # noqa: S308
