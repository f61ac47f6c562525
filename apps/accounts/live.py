"""Tell a user's open live sockets that their access changed, so each re-checks itself at once and
closes if it lost its object (issue: revoking must not wait for the next update to be filtered).

Driven by model signals rather than calls in each service: a grant, a role's privileges, a group's
members or a user's active flag can change through several services (and Django's admin), and every
one of those paths must reach the sockets. The message is sent after the commit, to the group each
LiveConsumer joins for its user (`user_group`).
"""

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from apps.accounts.models import Grant, Role, User
from apps.core.live import send_after_commit

ACCESS_CHANGED = "access.changed"


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def notify_access_changed(user_ids) -> None:
    user_ids = sorted(set(user_ids))
    if user_ids:
        send_after_commit([user_group(pk) for pk in user_ids], {"type": ACCESS_CHANGED})


def _members(group_ids) -> list[int]:
    return list(User.groups.through.objects.filter(group_id__in=list(group_ids)).values_list("user_id", flat=True))


def _grant_changed(sender, instance: Grant, **kwargs) -> None:
    notify_access_changed([instance.user_id] if instance.user_id else _members([instance.group_id]))


def _remember_privileges(sender, instance: Role, **kwargs) -> None:
    instance._privileges_before = (
        Role.objects.filter(pk=instance.pk).values_list("privileges", flat=True).first() if instance.pk else None
    )


def _role_changed(sender, instance: Role, created: bool = False, **kwargs) -> None:
    # Only a change of privileges matters (the built-in roles are re-saved unchanged after every migrate).
    if created or sorted(getattr(instance, "_privileges_before", None) or []) == sorted(instance.privileges):
        return
    grants = Grant.objects.filter(role=instance)
    users = [pk for pk in grants.values_list("user_id", flat=True) if pk]
    notify_access_changed(users + _members(grants.exclude(group=None).values_list("group_id", flat=True)))


def _membership_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if action not in {"post_add", "post_remove", "pre_clear"}:
        return
    if isinstance(instance, User):  # user.groups.add(...)
        notify_access_changed([instance.pk])
    elif action == "pre_clear":  # group.user_set.clear(): the members before they go
        notify_access_changed(_members([instance.pk]))
    else:  # group.user_set.add/remove(...)
        notify_access_changed(pk_set or [])


def _remember_active(sender, instance: User, update_fields=None, **kwargs) -> None:
    if update_fields is not None and "is_active" not in update_fields:  # e.g. last_login at each login
        instance._was_active = None
        return
    instance._was_active = (
        User.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first() if instance.pk else None
    )


def _user_saved(sender, instance: User, created: bool, **kwargs) -> None:
    if not created and getattr(instance, "_was_active", None) and not instance.is_active:
        notify_access_changed([instance.pk])


def _user_deleted(sender, instance: User, **kwargs) -> None:
    notify_access_changed([instance.pk])


def connect_signals() -> None:
    post_save.connect(_grant_changed, sender=Grant, dispatch_uid="access-grant-saved")
    post_delete.connect(_grant_changed, sender=Grant, dispatch_uid="access-grant-deleted")
    pre_save.connect(_remember_privileges, sender=Role, dispatch_uid="access-role-before")
    post_save.connect(_role_changed, sender=Role, dispatch_uid="access-role-saved")
    m2m_changed.connect(_membership_changed, sender=User.groups.through, dispatch_uid="access-membership")
    pre_save.connect(_remember_active, sender=User, dispatch_uid="access-user-active-before")
    post_save.connect(_user_saved, sender=User, dispatch_uid="access-user-saved")
    post_delete.connect(_user_deleted, sender=User, dispatch_uid="access-user-deleted")
