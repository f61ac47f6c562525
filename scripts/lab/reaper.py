"""PID 1 of a lab host's pid namespace: reap every child, forever.

libvirtd double-forks QEMU, so each QEMU is re-parented to the namespace's PID 1. If PID 1 does not
reap (e.g. `sleep infinity`), every QEMU exit leaves a zombie and libvirt waits ~40 s for it to vanish.
argv[1] (the host's state dir) is unused; it is there so `lab.sh` can recognise this process by its
command line before it kills the PID recorded in ns.pid.
"""

import os
import time

while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(1)
    except InterruptedError:
        pass
