#!/usr/bin/env python3
"""Start the panel's processes for `make run` and stop them all cleanly on Ctrl-C.

Children: daphne (HTTP + WebSocket), a Celery worker, the inventory listener and the console proxy
(127.0.0.1:6080). If one of them
dies, the others are stopped too, so the panel is never half up.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
HOST = os.environ.get("KVMPANEL_BIND", "127.0.0.1")
PORT = os.environ.get("KVMPANEL_PORT", "8000")

CHILDREN = {
    "web": [str(VENV_BIN / "daphne"), "-b", HOST, "-p", PORT, "kvmpanel.asgi:application"],
    "worker": [
        str(VENV_BIN / "celery"),
        "-A",
        "kvmpanel",
        "worker",
        "--loglevel=WARNING",
        "--concurrency=2",
        "--beat",
        "--schedule",
        str(ROOT / "var" / "celerybeat-schedule"),
    ],
    "inventory": [str(VENV_BIN / "python"), "manage.py", "inventory"],
    "console": [str(VENV_BIN / "python"), "manage.py", "console_proxy"],
}


def main() -> int:
    processes: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, argv in CHILDREN.items():
        # Each child gets its own process group, so Ctrl-C reaches only this supervisor, which then
        # stops the children in order instead of all of them racing at once.
        processes[name] = subprocess.Popen(argv, cwd=ROOT, start_new_session=True)
    print(f"\nkvmpanel is running at http://{HOST}:{PORT}/", flush=True)
    password_file = ROOT / "var" / "admin-password"
    print(f"login: admin  (password: {password_file.read_text().strip() if password_file.exists() else '?'})")
    print("Ctrl-C stops everything.\n", flush=True)
    exit_code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with {process.returncode}; stopping the panel", file=sys.stderr)
                exit_code = 1
                stopping = True
        time.sleep(0.5)
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    print("kvmpanel stopped.")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
