"""Peak resident memory of a server's whole process tree, read from /proc.

Two readings, because each misses something the other catches:
- a sample every 100 ms of the summed VmRSS of the server and its descendants, which
  sees processes that come and go but can miss a peak between samples;
- at the end, the sum over the tree of VmHWM, each process's own peak as the kernel
  counted it, which misses nothing for processes still alive but adds peaks that
  may not have coincided.
The reported figure is the VmHWM sum; for a one-process server (ours, and MLServer
with zero parallel workers) it is exactly that process's peak. Both count shared
pages once per process, as RSS does.
"""

import threading
from pathlib import Path

PROC = Path("/proc")
SAMPLE_INTERVAL_S = 0.1


def stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (the state first, field 3
    of stat(5)); an empty list once the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return []
    # The command name, in parentheses, may itself hold spaces or parentheses.
    return text[text.rindex(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """`root` and every process descending from it that is alive now."""
    children: dict[int, list[int]] = {}
    for process in PROC.glob("[0-9]*"):
        fields = stat_fields(process.name)
        if fields:  # else it exited while being listed
            children.setdefault(int(fields[1]), []).append(int(process.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def status_kib(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status, 0 once the process is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory:
    """Samples a process tree's memory in a thread, from `start` until `stop`."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.sampled_peak_kib = 0
        self.most_processes = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, name=f"memory-{root}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict:
        """Stop sampling and read the peaks; the tree must still be running."""
        self._stopped.set()
        self._thread.join()
        pids = tree(self.root)
        hwm_kib = sum(status_kib(pid, "VmHWM") for pid in pids)
        # Megabytes of 10^6 bytes, as the goal (200 MB) is stated; /proc counts KiB.
        return {
            "reported": "sum of VmHWM over the process tree at the end of the load rounds",
            "vmhwm_mb": hwm_kib * 1024 / 1e6,
            "sampled_peak_mb": self.sampled_peak_kib * 1024 / 1e6,
            "processes": max(self.most_processes, len(pids)),
        }

    def _sample(self) -> None:
        while not self._stopped.is_set():
            pids = tree(self.root)
            self.most_processes = max(self.most_processes, len(pids))
            rss_kib = sum(status_kib(pid, "VmRSS") for pid in pids)
            self.sampled_peak_kib = max(self.sampled_peak_kib, rss_kib)
            self._stopped.wait(SAMPLE_INTERVAL_S)
