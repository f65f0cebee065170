"""A real OpenSSH sshd on 127.0.0.1 for the tests, with its own host key and a key made by the test.

`start_sshd` runs /usr/sbin/sshd in the foreground (-D) with a config of its own on a free loopback
port; `SSHD.stop` ends it. Without sshd (or without root, which sshd needs to log users in) the tests
are skipped on a developer's machine and fail in CI (the CI variable is set), as `.ci/run` installs it.
Network namespaces (for an unreachable board) are made and removed by `network_namespace`.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import free_port, missing

SSHD_PATH = "/usr/sbin/sshd"


def require_sshd() -> None:
    problem = None
    if not Path(SSHD_PATH).is_file():
        problem = f"{SSHD_PATH} is not installed (apt-get install openssh-server)"
    elif os.geteuid() != 0:
        problem = "sshd needs root to log users in"
    elif shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        problem = "the OpenSSH client (ssh, ssh-keygen) is not installed"
    if problem:
        missing(f"{problem}; .ci/run installs it")


def make_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edge-ai-tests", "-f", str(path)],
                   check=True)
    return path


@dataclass
class SSHD:
    process: subprocess.Popen
    port: int
    directory: Path
    client_key: Path
    host_public_key: str
    user: str
    log: Path

    @property
    def host_key_entry(self) -> str:
        """The line of a known_hosts file for this sshd."""
        return f"[127.0.0.1]:{self.port} {self.host_public_key}"

    def board_args(self, **extra) -> dict:
        return {"ssh_host": "127.0.0.1", "ssh_port": self.port, "user": self.user, "key_filename": str(self.client_key),
                "host_key": self.host_public_key, "connect_timeout": 10, **extra}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_sshd(directory: Path, set_env: dict[str, str] | None = None, address: str = "127.0.0.1",
               namespace: str | None = None) -> SSHD:
    """sshd on `address` (127.0.0.1, or an address of the test's own network `namespace`, where it then
    runs) on a free port, accepting a key made here, for the current user."""
    require_sshd()
    directory.mkdir(parents=True, exist_ok=True)
    host_key = make_key(directory / "host_ed25519")
    client_key = make_key(directory / "client_ed25519")
    authorized = directory / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    log = directory / "sshd.log"
    for _ in range(3):  # the free port may be taken before sshd binds it
        port = free_port()
        config = directory / "sshd_config"
        lines = [f"Port {port}", f"ListenAddress {address}", f"HostKey {host_key}", f"PidFile {directory / 'sshd.pid'}",
                 f"AuthorizedKeysFile {authorized}", "UsePAM no", "StrictModes no", "PasswordAuthentication no",
                 "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "AllowTcpForwarding yes",
                 "Subsystem sftp internal-sftp", "LogLevel VERBOSE", "MaxStartups 50", "MaxSessions 50"]
        lines += [f"SetEnv {key}={value}" for key, value in (set_env or {}).items()]
        config.write_text("\n".join(lines) + "\n")
        with open(log, "ab") as handle:
            prefix = ["ip", "netns", "exec", namespace] if namespace else []
            process = subprocess.Popen([*prefix, SSHD_PATH, "-D", "-e", "-f", str(config)], stdout=handle,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
                return SSHD(process, port, directory, client_key, host_key.with_suffix(".pub").read_text().split(
                    " edge-ai-tests")[0].strip(), getpass.getuser(), log)
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    raise RuntimeError(f"sshd did not start; its log:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def network_namespace(index: int, rate: str | None = None):
    """A network namespace `edge-ai-test-N` joined to this host by a veth pair, 10.200.N.1 (host) and
    10.200.N.2 (namespace); yields the namespace's name and removes it (and the pair) on exit.

    With `rate` (tc's units: "50mbit"), each end of the pair sends through a token bucket (tbf) of that rate.
    """
    if os.geteuid() != 0 or shutil.which("ip") is None:
        missing("network namespaces need root and iproute2; .ci/run installs it")
    name = f"edge-ai-test-{index}-{os.getpid() % 10000}"
    host_side, inside = veth_host_side(index), f"eai{index}n{os.getpid() % 10000}"

    def ip(*words: str, namespace: str | None = None, check: bool = True) -> None:
        prefix = ["ip", "netns", "exec", namespace] if namespace else []
        subprocess.run([*prefix, "ip", *words], check=check, capture_output=True, timeout=30)

    try:
        ip("netns", "add", name)
        ip("link", "add", host_side, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", name)
        ip("addr", "add", f"10.200.{index}.1/24", "dev", host_side)
        ip("link", "set", host_side, "up")
        ip("addr", "add", f"10.200.{index}.2/24", "dev", inside, namespace=name)
        ip("link", "set", inside, "up", namespace=name)
        ip("link", "set", "lo", "up", namespace=name)
        if rate is not None:
            for device, namespace in ((host_side, None), (inside, name)):
                prefix = ["ip", "netns", "exec", namespace] if namespace else []
                subprocess.run([*prefix, "tc", "qdisc", "add", "dev", device, "root", "tbf", "rate", rate,
                                "burst", "64kb", "latency", "100ms"], check=True, capture_output=True, timeout=30)
        yield name
    finally:
        ip("link", "del", host_side, check=False)
        ip("netns", "del", name, check=False)


def ours_on_board(marker: str) -> list[str]:
    """Processes of this machine (the test board) whose command line holds `marker`: what we left running."""
    result = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines()[1:] if marker in line and "ps -eo" not in line]


def listening_ports() -> set[int]:
    result = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True)
    ports = set()
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            ports.add(int(fields[3].rpartition(":")[2]))
    return ports


def veth_host_side(index: int) -> str:
    """The host's end of `network_namespace(index)`'s veth pair."""
    return f"eai{index}h{os.getpid() % 10000}"


def bytes_sent(device: str) -> int:
    """Bytes the root qdisc of `device` (this host's side) has sent."""
    result = subprocess.run(["tc", "-s", "qdisc", "show", "dev", device], capture_output=True, text=True, check=True)
    found = re.search(r"Sent (\d+) bytes", result.stdout)
    return int(found.group(1)) if found else 0
