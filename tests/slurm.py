"""A real single-node Slurm for the tests: Debian's munged, slurmctld and slurmd, started without systemd.

`slurm_cluster` writes a slurm.conf for this host (one node, `edgeai`, on 127.0.0.1, ports of its
own, every file but the config in a temporary directory), starts the three daemons in the foreground
under Popen, waits until `sinfo` shows the node idle, and on leaving cancels what is still queued and
stops the daemons by their PIDs. Slurm records every finished job in a text file of its own
(`JobCompType=jobcomp/filetxt`), which `SlurmCluster.completed_jobs` reads.

The config is /etc/slurm/slurm.conf, the place every Slurm command looks by default: the job step that
Snakemake's Slurm executor starts inside a job runs `srun` with the SLURM_* variables removed (SLURM_CONF
among them), so a config elsewhere would not be found there. A config at that place that this module
did not write is never touched (the test is skipped); a lock serialises test clusters on one host.
Without slurm-wlm and munge, or without root (slurmd starts jobs as their users), the tests are skipped
on a developer's machine and fail in CI (the CI variable is set): `.ci/run` installs them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from conftest import free_port, missing

SLURM_CONF = Path("/etc/slurm/slurm.conf")
LOCK = Path(tempfile.gettempdir()) / "edge-ai-tests-slurm.lock"  # one test cluster per host at a time
MARK = "# Written by edge-ai-tester's tests/slurm.py for a test cluster; removed when the test ends.\n"
DAEMONS = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd"}
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "srun", "scontrol")
NODE = "edgeai"
PARTITION = "edge"


def slurm_problem() -> str | None:
    """Why a test cluster cannot start here, or None."""
    missing = [name for name, path in DAEMONS.items() if not Path(path).is_file()]
    missing += [name for name in CLIENTS if shutil.which(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd needs root (it starts each job as its user)"
    if SLURM_CONF.exists() and not SLURM_CONF.read_text(errors="replace").startswith(MARK):
        return f"{SLURM_CONF} belongs to a Slurm installation of this host: the test does not replace it"
    return None


def require_slurm() -> None:
    problem = slurm_problem()
    if problem:
        missing(f"{problem}; .ci/run installs and runs it")


def parse_jobcomp(text: str) -> list[dict[str, str]]:
    """jobcomp/filetxt's records, one a line: `JobId=3 UserId=root(0) ... JobState=COMPLETED ...`."""
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in text.splitlines() if line.startswith("JobId=")]


@dataclass
class SlurmCluster:
    directory: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def jobcomp(self) -> Path:
        return self.directory / "jobcomp.txt"

    def completed_jobs(self) -> list[dict[str, str]]:
        """Every job Slurm finished, from its own record (JobId, Name, JobState, NodeList, ProcCnt, ...)."""
        return parse_jobcomp(self.jobcomp.read_text()) if self.jobcomp.exists() else []

    def log_tails(self, lines: int = 15) -> str:
        tails = []
        for path in sorted(self.directory.glob("*.log")):
            tails.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(tails)

    def queued_jobs(self) -> list[str]:
        result = subprocess.run(["squeue", "--noheader", "--format=%i"], capture_output=True, text=True,
                                timeout=30)
        return result.stdout.split()

    def stop(self) -> None:
        """Cancel what is queued (job steps outlive slurmd), then stop the daemons, newest first."""
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                jobs = self.queued_jobs()
                if jobs:
                    subprocess.run(["scancel", *jobs], capture_output=True, timeout=30)
                    deadline = time.monotonic() + 30
                    while self.queued_jobs() and time.monotonic() < deadline:
                        time.sleep(0.5)
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def slurm_conf(directory: Path, cpus: int, memory_mb: int) -> str:
    host = socket.gethostname().split(".")[0]
    return MARK + "\n".join([
        "ClusterName=edgeai-tests",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={directory / 'munge.socket'}",
        f"StateSaveLocation={directory / 'state'}",
        f"SlurmdSpoolDir={directory / 'spool'}",
        f"SlurmctldPidFile={directory / 'slurmctld.pid'}",
        f"SlurmdPidFile={directory / 'slurmd.pid'}",
        f"SlurmctldLogFile={directory / 'slurmctld.log'}",
        f"SlurmdLogFile={directory / 'slurmd.log'}",
        # no cgroups without systemd: processes tracked by parentage, no task binding, no accounting
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none",
        # Slurm's own record of every finished job
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={directory / 'jobcomp.txt'}",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # squeue keeps finished jobs this long: the executor reads their states with it (no sacct here)
        "MinJobAge=600",
        "ReturnToService=2",
        # the node as declared, whatever this host has: the profile's requests fit it as on a cluster
        "SlurmdParameters=config_overrides",
        f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} "
        "State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def wait_until(predicate, timeout: float, what: str, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode} while waiting for {what}:\n"
                                   f"{cluster.log_tails()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout:.0f} s:\n{cluster.log_tails()}")
        time.sleep(0.2)


def node_state() -> str:
    result = subprocess.run(["sinfo", "--noheader", "--Node", "--nodes", NODE, "--format=%T"], capture_output=True,
                            text=True, timeout=30)
    return result.stdout.strip()


@contextlib.contextmanager
def slurm_cluster(cpus: int, memory_mb: int, lock_timeout: float = 1800) -> Iterator[SlurmCluster]:
    """A running one-node cluster with `cpus` and `memory_mb` declared; everything stopped on leaving."""
    require_slurm()
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another test cluster held {LOCK} for {lock_timeout:.0f} s") from None
                time.sleep(1)
        # munged refuses a socket whose directories are not searchable by all (pytest's are 0700)
        directory = Path(tempfile.mkdtemp(prefix="edge-ai-slurm-"))
        directory.chmod(0o755)
        cluster = SlurmCluster(directory)
        try:
            for name in ("state", "spool"):
                (directory / name).mkdir()
            keys = directory / "munge"
            keys.mkdir(mode=0o700)
            key = keys / "munge.key"
            with os.fdopen(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as secret:
                secret.write(secrets.token_bytes(1024))
            SLURM_CONF.write_text(slurm_conf(directory, cpus, memory_mb))
            munge_socket = directory / "munge.socket"
            cluster.processes["munged"] = subprocess.Popen(
                [DAEMONS["munged"], "--foreground", f"--key-file={key}", f"--socket={munge_socket}",
                 f"--pid-file={directory / 'munged.pid'}", f"--log-file={directory / 'munged.log'}",
                 f"--seed-file={keys / 'munged.seed'}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            wait_until(munge_socket.exists, 30, "munge socket", cluster)
            for name, arguments in (("slurmctld", []), ("slurmd", ["-N", NODE])):
                with open(directory / f"{name}-output.log", "wb") as output:
                    cluster.processes[name] = subprocess.Popen(
                        [DAEMONS[name], "-D", "-f", str(SLURM_CONF), *arguments], stdout=output,
                        stderr=subprocess.STDOUT)
            wait_until(lambda: node_state() == "idle", 60, f"idle node {NODE}", cluster)
            yield cluster
        finally:
            cluster.stop()
            with contextlib.suppress(FileNotFoundError):
                if SLURM_CONF.read_text(errors="replace").startswith(MARK):
                    SLURM_CONF.unlink()
            shutil.rmtree(directory, ignore_errors=True)
