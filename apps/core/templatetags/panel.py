import shlex

from django import template

register = template.Library()


@register.filter
def command(pattern: str, name: str) -> str:
    """`virsh start {name}` with the name quoted the way a shell needs it."""
    return pattern.format(name=shlex.quote(name))


@register.filter
def spaced(values) -> str:
    return " ".join(sorted(str(v) for v in values))


@register.filter
def mib(kib: int) -> str:
    return f"{int(kib) // 1024} MiB"
