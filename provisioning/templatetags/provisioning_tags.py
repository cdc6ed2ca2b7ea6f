"""Small template helpers of the provisioning page."""

from django import template

register = template.Library()

STATE_SYMBOLS = {
    "pending": "⬜",
    "blocked": "⛔",
    "running": "⏳",
    "done": "✅",
    "failed": "❌",
    "skipped": "\u2796",  # heavy minus sign
}


@register.filter
def state_symbol(state: str) -> str:
    """The plan's table used ⬜ for a step not done; the other states get their own mark."""
    return STATE_SYMBOLS.get(state, "?")


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)
