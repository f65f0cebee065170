#!/usr/bin/env python3
"""A batch system in miniature on this host, for Snakemake's generic cluster executor (profiles/cluster-generic).

    local_batch.py submit [--name N --threads T --mem-mb M --runtime MIN] JOBSCRIPT   prints the job's id
    local_batch.py status ID                                               prints running, success or failed
    local_batch.py [cancel] ID...                                          stops the jobs (Snakemake gives ids only)

A job is its script run by `sh` in a session of its own (so that `cancel` stops it whole),
its output in .snakemake/local-batch/ID.log, its exit status in ID.exit when it ends. Every submission
is a line of .snakemake/local-batch/jobs.tsv: id, name, threads, mem_mb, runtime, submit time, script.
Nothing is enforced (threads, memory, run time are recorded only): Snakemake's --jobs and resources
decide what runs at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(".snakemake") / "local-batch"


def submit(arguments: argparse.Namespace) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    # The job's id is its session leader's PID ($$ in the wrapper): its files are named after it.
    wrapper = (f"exec >{shlex.quote(str(STATE))}/$$.log 2>&1; sh {shlex.quote(arguments.jobscript)}; "
               f"echo $? >{shlex.quote(str(STATE))}/$$.exit.part && "
               f"mv {shlex.quote(str(STATE))}/$$.exit.part {shlex.quote(str(STATE))}/$$.exit")
    process = subprocess.Popen(["sh", "-c", wrapper], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    with open(STATE / "jobs.tsv", "a", encoding="utf-8") as table:
        table.write("\t".join(map(str, (process.pid, arguments.name, arguments.threads, arguments.mem_mb,
                                        arguments.runtime, f"{time.time():.3f}", arguments.jobscript))) + "\n")
    print(process.pid)
    return 0


def alive(job: int) -> bool:
    try:
        os.kill(job, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (ended, not yet reaped by init) counts as ended
    try:
        return Path(f"/proc/{job}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def status(arguments: argparse.Namespace) -> int:
    exit_file = STATE / f"{arguments.job}.exit"
    if exit_file.exists():
        print("success" if exit_file.read_text().strip() == "0" else "failed")
    elif alive(int(arguments.job)):
        print("running")
    elif exit_file.exists():  # it ended between the two looks
        print("success" if exit_file.read_text().strip() == "0" else "failed")
    else:
        print("failed")  # ended without a status: killed
    return 0


def cancel(arguments: argparse.Namespace) -> int:
    for job in arguments.jobs:
        try:
            os.killpg(int(job), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    submitting = commands.add_parser("submit", help="start a job script, print its id")
    submitting.add_argument("--name", default="job")
    submitting.add_argument("--threads", default="1")
    submitting.add_argument("--mem-mb", default="")
    submitting.add_argument("--runtime", default="")
    submitting.add_argument("jobscript")
    submitting.set_defaults(run=submit)
    asking = commands.add_parser("status", help="print running, success or failed")
    asking.add_argument("job")
    asking.set_defaults(run=status)
    cancelling = commands.add_parser("cancel", help="stop jobs")
    cancelling.add_argument("jobs", nargs="*")
    cancelling.set_defaults(run=cancel)
    arguments = parser.parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    # Snakemake's cancel command takes no arguments of its own: `local_batch.py ID...` cancels.
    argv = sys.argv[1:]
    if argv and argv[0] not in {"submit", "status", "cancel", "-h", "--help"}:
        argv = ["cancel", *argv]
    sys.exit(main(argv))
