"""Run a shell command in a running lab guest through its serial console.

The tiny guest (LAB.md §2) has a root shell on ttyS0. `run_in_guest` opens the console the way the
panel does (`kvmpanel.virt.serial.open_serial`, a libvirt console stream), waits until the shell
answers, types the command between two markers and returns what it printed:

    run_in_guest(vm, "cat /sys/block/vda/size")            # -> "65536"
    run_in_guest(vm, "ls /sys/block", expect="vdb")

`write_marker(vm)` / `read_marker(vm)` put a unique text on the guest's disk and read it back, to
prove data survived a convert, a move or a snapshot revert.

The begin and end tags are typed with quotes inside (`echo KVMB-"tag"`), so the terminal's echo of the typed
line never matches; only the shell's output does. The console is closed again before returning, so
the next call (or a test's own console) can open it.
"""

import re
import threading
import time
import uuid

from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.serial import SerialConsole, open_serial

_PROBE_EVERY = 2.0


class _Screen:
    """What the guest printed since the console opened, and a way to wait for a pattern in it."""

    def __init__(self) -> None:
        self._text = ""
        self._changed = threading.Condition()
        self.closed = ""

    def feed(self, data: bytes) -> None:
        with self._changed:
            self._text += data.decode("utf-8", "replace").replace("\r", "")
            self._changed.notify_all()

    def close(self, reason: str) -> None:
        with self._changed:
            self.closed = reason or "closed"
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern, until: float) -> re.Match | None:
        with self._changed:
            while True:
                found = pattern.search(self._text)
                if found or self.closed:
                    return found
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    @property
    def text(self) -> str:
        with self._changed:
            return self._text


def _open(vm, screen: _Screen, until: float) -> SerialConsole:
    """Open the console, retrying while another session still holds it."""
    while True:
        try:
            return open_serial(vm.host.uri, vm.uuid, on_data=screen.feed, on_close=screen.close)
        except HypervisorError as error:
            if error.code != "console-busy" or time.monotonic() > until:
                raise
            time.sleep(0.3)


def _wait_for_shell(console: SerialConsole, screen: _Screen, tag: str, until: float) -> None:
    """Type a probe until the shell echoes it back: right after boot the shell may not run yet."""
    ready = re.compile(rf"KVMR-{tag}\n")
    while time.monotonic() < until:
        console.write(f'\necho KVMR-"{tag}"\n'.encode())
        if screen.wait_for(ready, min(until, time.monotonic() + _PROBE_EVERY)):
            return
        if screen.closed:
            break
    raise AssertionError(
        f"the guest's shell on ttyS0 did not answer: {screen.closed or 'timeout'}\n{screen.text[-2000:]}"
    )


def run_in_guest(vm, command: str, *, expect: str | None = None, timeout: float = 30, check: bool = True) -> str:
    """Run `command` in the guest's root shell; return its output (stdout and stderr, no trailing
    newline). Fails when it does not finish within `timeout` seconds, when `check` and its exit
    status is not 0, or when `expect` (a regex) is not found in the output."""
    if "\n" in command:
        raise ValueError("one command line at a time")
    tag = uuid.uuid4().hex[:10]
    until = time.monotonic() + timeout
    screen = _Screen()
    console = _open(vm, screen, until)
    try:
        _wait_for_shell(console, screen, tag, until)
        # The output and both tags leave in one printf (one write), so the guest's own console notices
        # (a DHCP lease line) can only land before or after it, never inside.
        console.write(
            f"out=$({command} 2>&1); status=$?; printf 'KVMB-{tag}\\n%s\\nKVME-{tag}-%s\\n' \"$out\" $status\n".encode()
        )
        done = screen.wait_for(re.compile(rf"KVMB-{tag}\n(.*?)KVME-{tag}-(\d+)\n", re.DOTALL), until)
    finally:
        console.close()
    if done is None:
        raise AssertionError(f"{command!r} did not finish in {timeout} s: {screen.closed}\n{screen.text[-2000:]}")
    output, status = done.group(1).rstrip("\n"), int(done.group(2))
    if check and status != 0:
        raise AssertionError(f"{command!r} exited with {status}:\n{output}")
    if expect is not None and not re.search(expect, output):
        raise AssertionError(f"{command!r} printed no match for {expect!r}:\n{output}")
    return output


# A marker lives 1 MiB into the disk: clear of a partition table or anything else at the start.
MARKER_SECTOR = 2048


def write_marker(vm, device: str = "vda", *, text: str = "") -> str:
    """Write a unique marker (or `text`, no spaces) straight to the guest's block device, synced to
    the disk; returns it. The disk needs no filesystem, so an empty disk works."""
    marker = text or f"MARK-{uuid.uuid4().hex[:12]}"
    run_in_guest(vm, f"echo {marker} | dd of=/dev/{device} bs=512 seek={MARKER_SECTOR} conv=fsync")
    return marker


def read_marker(vm, device: str = "vda") -> str:
    """What `write_marker` left on the device ("" when nothing was written there). The sector is
    printed in one line between delimiters: the guest's own console notices (a DHCP lease) may land in
    the output too."""
    output = run_in_guest(
        vm,
        # One printf, one write: another process's line cannot land inside it.
        f"printf 'KVMD<%s>KVMD\\n' \"$(dd if=/dev/{device} bs=512 skip={MARKER_SECTOR} count=1 2>/dev/null"
        " | tr -d '\\000\\n')\"",
    )
    found = re.search(r"KVMD<(.*?)>KVMD", output)
    if found is None:
        raise AssertionError(f"no marker read from {device}:\n{output}")
    return found.group(1)
