"""`{% manages_access_to obj as flag %}`: whether the Permissions tab is shown on an object's page
(user.manage on its scope or above), for pages whose view does not compute it."""

from django import template

from apps.accounts.explain import manages_access

register = template.Library()


@register.simple_tag(takes_context=True)
def manages_access_to(context, obj) -> bool:
    return manages_access(context["request"].user, obj)
