"""Template helpers for the storage pages: shell quoting for the virsh lines, honest sizes."""

import shlex

from django import template
from django.template.defaultfilters import filesizeformat

register = template.Library()


@register.filter
def shquote(value: object) -> str:
    """`value` quoted for a shell, so a shown virsh command can be pasted as it is."""
    return shlex.quote(str(value))


@register.filter
def bytes_exact(value: int) -> str:
    """'1.0 GB (1073741824 bytes)'-style: the rounded size with the exact count for the tooltip."""
    return f"{filesizeformat(value)} ({int(value):,} B)"


@register.filter
def percent_of(part: int, whole: int) -> str:
    if not whole:
        return "—"
    share = 100 * int(part) / int(whole)
    return f"{share:.1f}%" if share < 10 else f"{share:.0f}%"
