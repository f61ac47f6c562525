from django import template

register = template.Library()


@register.filter
def mib(kib: int) -> str:
    return f"{int(kib) // 1024} MiB"
