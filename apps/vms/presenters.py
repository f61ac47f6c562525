"""What the VM pages print, computed once per request in Python.

Building 100 rows by 6 action forms in the template (URL reversal, CSRF masking, translations per
form) took ~120 ms at 100 rows (bench/list_latency.py); precomputed here it is a few ms.
"""

import shlex
from dataclasses import dataclass
from html import escape

from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from apps.vms.choices import STATE_REASONS, PowerState
from apps.vms.models import VirtualMachine
from apps.vms.services import LIFECYCLE_ACTIONS


@dataclass(frozen=True)
class ActionButton:
    name: str
    label: str
    url: str
    show_states: str
    hidden: bool
    dangerous: bool
    command: str
    confirm: str

    def html(self, csrf_token: str) -> str:
        """One POST form. Built with the stdlib's escape rather than the template engine or
        format_html: at 100 rows by 6 actions those were the bulk of the list page's time."""
        url = escape(self.url)
        confirm = f' hx-confirm="{escape(self.confirm)}"' if self.confirm else ""
        return (
            f'<form method="post" action="{url}" hx-post="{url}" hx-target="#messages" hx-swap="afterbegin" '
            f'data-show-states="{self.show_states}" class="inline{" hidden" if self.hidden else ""}"{confirm}>'
            f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(csrf_token)}">'
            f'<button type="submit" class="{"danger" if self.dangerous else ""}" data-action="{self.name}" '
            f'title="{escape(self.command)}">{escape(self.label)}</button></form>'
        )


@dataclass(frozen=True)
class VMRow:
    vm: VirtualMachine
    state_label: str
    reason_label: str
    actions: list[ActionButton]
    csrf_token: str

    @property
    def actions_html(self) -> str:
        """The row's action forms, as one escaped string (see ActionButton.html)."""
        return mark_safe(  # noqa: S308 - every dynamic value is escaped in ActionButton.html
            '<div class="actions" data-vm-actions>' + "".join(b.html(self.csrf_token) for b in self.actions) + "</div>"
        )


class RowBuilder:
    """Per-request constants (labels, URL prefix, state lists) shared by every row."""

    def __init__(self, csrf_token: str) -> None:
        self.csrf_token = csrf_token
        self.state_labels = {value: str(label) for value, label in PowerState.choices}
        self.missing_label = _("missing")
        self.url_prefix = reverse("vms:list")
        self.actions = [
            (action, str(action.label), " ".join(sorted(action.allowed_states)))
            for action in LIFECYCLE_ACTIONS.values()
        ]

    @staticmethod
    def confirm(vm: VirtualMachine) -> str:
        return _("Force off %(name)s? Unsaved guest data is lost, as when pulling the plug.") % {"name": vm.name}

    def row(self, vm: VirtualMachine, privileges: frozenset[str]) -> VMRow:
        quoted = shlex.quote(vm.name)
        buttons = [
            ActionButton(
                name=action.name,
                label=label,
                url=f"{self.url_prefix}{vm.pk}/{action.name}/",
                show_states=show_states,
                hidden=vm.missing or vm.state not in action.allowed_states,
                dangerous=action.dangerous,
                command=action.virsh.format(name=quoted),
                confirm=_("Force off %(name)s? Unsaved guest data is lost, as when pulling the plug.")
                % {"name": vm.name}
                if action.dangerous
                else "",
            )
            for action, label, show_states in self.actions
            if action.privilege in privileges
        ]
        label = self.missing_label if vm.missing else self.state_labels.get(vm.state, vm.state)
        reason = str(STATE_REASONS.get(vm.state_reason, vm.state_reason))
        return VMRow(vm=vm, state_label=label, reason_label=reason, actions=buttons, csrf_token=self.csrf_token)
