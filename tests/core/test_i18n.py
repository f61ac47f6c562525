"""The Simplified Chinese catalogue: complete, up to date with the code, and used for a user who chose it.

The compiled .mo is not committed (`make` builds it); the session fixture below compiles it when it is
missing or older than the .po, so a plain `pytest` run works as well as `make test`.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import trans_real

from apps.accounts.models import User

ROOT = Path(settings.BASE_DIR)
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
MAKEMESSAGES_IGNORES = [".venv", "node_modules", "var", "static/vendor", "tests", "bench"]


@pytest.fixture(scope="session", autouse=True)
def compiled_catalogue():
    """Build the .mo the way `make messages` does, then drop any catalogue Django cached before it existed."""
    if not MO.exists() or MO.stat().st_mtime < PO.stat().st_mtime:
        call_command("compilemessages", locale=["zh_Hans"], ignore_patterns=[".venv", "node_modules"], verbosity=0)
        trans_real._translations = {}
        trans_real._default = None
        trans_real._active = trans_real.Local()
    yield MO


@pytest.fixture(autouse=True)
def language_restored():
    """A request activates the user's language on this thread and leaves it there: undo that for later tests."""
    with translation.override(translation.get_language()):
        yield


def _unquote(line: str) -> str:
    body = line.strip()[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def read_catalogue(path: Path) -> dict[str, tuple[str, set[str]]]:
    """msgid -> (msgstr, flags) for a .po file as makemessages writes it (no plurals, no contexts)."""
    entries: dict[str, tuple[str, set[str]]] = {}
    flags: set[str] = set()
    current: list[str] | None = None
    msgid = msgstr = None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("#,"):
            flags = {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("msgid "):
            msgid, msgstr = [_unquote(line[6:])], []
            current = msgid
        elif line.startswith("msgstr "):
            msgstr = [_unquote(line[7:])]
            current = msgstr
        elif line.startswith('"') and current is not None:
            current.append(_unquote(line))
        elif (not line.strip() or line.startswith("#:")) and msgid is not None and msgstr is not None:
            entries["".join(msgid)] = ("".join(msgstr), flags)
            flags, current, msgid, msgstr = set(), None, None, None
        assert not line.startswith(("msgid_plural", "msgctxt", "#~")), f"unexpected catalogue line: {line}"
    return entries


def test_every_message_has_a_chinese_translation():
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", os.devnull, str(PO)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr, result.stderr
    assert "fuzzy" not in result.stderr, result.stderr
    entries = read_catalogue(PO)
    header, header_flags = entries.pop("")
    assert "fuzzy" not in header_flags
    assert "Language: zh_Hans\n" in header
    assert "Plural-Forms: nplurals=1; plural=0;\n" in header
    assert len(entries) > 100
    for msgid, (msgstr, flags) in entries.items():
        assert msgstr, f"untranslated: {msgid!r}"
        assert "fuzzy" not in flags, f"fuzzy: {msgid!r}"


def test_every_translation_keeps_its_placeholders():
    placeholder = re.compile(r"%\([a-z_]+\)[sdr]|%[sd]")
    for msgid, (msgstr, _flags) in read_catalogue(PO).items():
        assert sorted(placeholder.findall(msgstr)) == sorted(placeholder.findall(msgid)), msgid
        for command in re.findall(r"virsh [a-z-]+|qemu[+:][a-z/+:]+|<[a-z:]+>", msgid):
            assert command in msgstr, f"{command!r} must stay untranslated in {msgid!r}"


def test_the_catalogue_has_exactly_the_messages_the_code_marks(tmp_path):
    """makemessages on a copy of the source must find no new message and drop no old one."""
    copy = tmp_path / "src"
    for name in ["apps", "kvmpanel", "templates", "locale"]:
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", copy / "manage.py")
    ignores = [f"--ignore={pattern}" for pattern in MAKEMESSAGES_IGNORES]
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "-v", "0", *ignores],
        cwd=copy,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "kvmpanel.settings", "KVMPANEL_VAR": str(tmp_path / "var")},
    )
    regenerated = copy / PO.relative_to(ROOT)
    assert set(read_catalogue(regenerated)) == set(read_catalogue(PO)), (
        "locale/zh_Hans is stale: run makemessages -l zh_Hans and translate the new messages"
    )


def make_user(username: str, language: str) -> User:
    return User.objects.create_user(username, password="x", is_superuser=True, language=language)


@pytest.mark.django_db
def test_a_user_who_chose_chinese_gets_the_panel_in_chinese(test_host):
    chinese, english = Client(), Client()
    chinese.force_login(make_user("li", "zh-hans"))
    english.force_login(make_user("emma", "en"))

    page = chinese.get(reverse("vms:list")).content.decode()
    assert "<h1>虚拟机</h1>" in page
    assert '<html lang="zh-hans">' in page
    assert "运行中" in page  # a running VM's state label
    assert ">强制关机</button>" in page
    assert "Virtual machines" not in page

    page = english.get(reverse("vms:list")).content.decode()
    assert "<h1>Virtual machines</h1>" in page
    assert "虚拟机" not in page

    page = chinese.get(reverse("hosts:list")).content.decode()
    assert "<h1>宿主机</h1>" in page
    assert "<th>名称</th>" in page
    test_host.refresh_from_db()
    with translation.override("zh-hans"):
        status = str(test_host.get_status_display())
    with translation.override("en"):
        assert status != test_host.get_status_display()
    assert f">{status}</span>" in page

    page = english.get(reverse("hosts:list")).content.decode()
    assert "<h1>Hosts</h1>" in page


@pytest.mark.django_db
def test_an_api_refusal_is_translated_for_a_chinese_user(test_host):
    running = test_host.vms.filter(state="running").first()
    client = Client()
    client.force_login(make_user("wang", "zh-hans"))
    response = client.post(reverse("vm-start", args=[running.pk]))
    assert response.status_code == 409
    assert response.json()["detail"] == "虚拟机已在运行。"


def test_the_language_names_and_state_labels_are_translated():
    with translation.override("zh-hans"):
        assert translation.gettext("Virtual machines") == "虚拟机"
        assert translation.gettext("Shut down") == "关机"
        assert translation.gettext("Force off") == "强制关机"
        assert translation.gettext("Storage pools") == "存储池"
    with translation.override("en"):
        assert translation.gettext("Virtual machines") == "Virtual machines"
