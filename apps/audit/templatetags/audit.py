"""`{% may_view_audit as flag %}` for the navigation bar: shows the "Audit" link only to those who may read the log.

Costs no query of its own on most pages: the access snapshot it reads is cached on the request's
user (loaded once per request by the one gate), and superusers need none.
"""

from django import template

from apps.audit.selectors import may_view_audit as _may_view_audit

register = template.Library()


@register.simple_tag(takes_context=True)
def may_view_audit(context) -> bool:
    request = context.get("request")
    return request is not None and _may_view_audit(request.user)
