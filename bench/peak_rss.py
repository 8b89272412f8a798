"""Runs a command and writes its peak resident memory (kB, `ru_maxrss`) to the file named first.

Why a wrapper: Linux carries `ru_maxrss` over `exec`, so the figure `wait4` gives for a process
the harness starts includes the harness's own memory (subprocess starts children with vfork, whose
`exec` records the *parent's* high-water mark). After a first sync of 100,000 secrets the harness
holds its large report, and every later case reported the harness's ~108 MB instead of its own
peak. This small interpreter forks for real: the child starts from this process's few MB, so its
`ru_maxrss` is the command's own peak (never less than this wrapper's ~10 MB).

    python3 bench/peak_rss.py OUT_FILE COMMAND [ARGS...]
"""
import os
import sys


def main():
    out, argv = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w") as f:
        f.write(f"{usage.ru_maxrss}\n")
    sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
