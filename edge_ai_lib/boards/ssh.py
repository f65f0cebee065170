"""Boards reached over SSH (Fabric): deploy this build, serve on the board's loopback, forward, collect.

The host connects with Fabric (host keys checked against a known key or a known_hosts file, never
accepted blindly), makes sure the board runs this build of `edge_ai_lib` in a virtual environment of
its work directory, starts `inference_server` bound to the board's 127.0.0.1 and forwards its port
through SSH, so nothing of ours listens on the board's network. The server's stdin is the SSH
channel that started it: when this host goes away in any way, the channel closes and the server
stops (its --stop-with-fd 0). The server holds the board's lock (flock, in the work directory) while
it runs, so one benchmark at a time uses the board whichever host starts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from edge_ai_lib.core.args import Argument
from edge_ai_lib.core.board import Board
from edge_ai_lib.core.errors import BoardError, ConfigurationError

log = logging.getLogger(__name__)

LISTENING = "listening on "
# The runtime extra of pyproject.toml each runtime module needs on the board.
RUNTIME_EXTRAS = {"edge_ai_lib.runtimes.onnxruntime": "onnxruntime", "edge_ai_lib.runtimes.tflite": "litert",
                  "edge_ai_lib.runtimes.tvm": "tvm"}
# The module each extra brings, checked on the board before the server starts.
EXTRA_MODULES = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert", "tvm": "tvm"}
INSTALLED_RECORD = "installed.json"
DISK_NEARLY_FULL = 64 * 1024  # bytes free under which a server that died at start is taken to have lacked space
LOCK_BUSY_STATUS = 75  # flock -E: the board's lock stayed busy
# What the wheel of this checkout is built from; its hash names the cached wheel.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "edge_ai_lib")


def _quote(value: Any) -> str:
    return shlex.quote(str(value))


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def cache_directory() -> Path:
    """Where built wheels and wheelhouses are kept: $EDGE_AI_CACHE_DIR, else ~/.cache/edge-ai-tester."""
    configured = os.environ.get("EDGE_AI_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "edge-ai-tester"


def source_root() -> Path:
    """The checkout this library was imported from (the wheel is built from it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise BoardError(f"edge_ai_lib was not imported from a checkout ({root} has no pyproject.toml), so no "
                         "wheel can be built for the board: run from the repository (pip install -e .), or "
                         "prepare the board by hand and set no_install: true")
    return root


def _source_files(root: Path) -> list[Path]:
    files = []
    for name in WHEEL_SOURCES:
        path = root / name
        if path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                      and p.suffix not in (".pyc", ".pyo")]
        elif path.is_file():
            files.append(path)
    return sorted(files)


def build_wheel(cache: Path | None = None) -> Path:
    """A wheel of this checkout, built once per content (hash of its sources) and kept in the cache.

    Built from a copy of the sources, so the checkout gets no build/ or egg-info directories.
    """
    root = source_root()
    digest = hashlib.sha256()
    files = _source_files(root)
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    target = (cache or cache_directory()) / "wheels" / digest.hexdigest()[:20]
    built = sorted(target.glob("edge_ai_lib-*.whl"))
    if built:
        return built[0]
    with tempfile.TemporaryDirectory(prefix="edge-ai-wheel-") as scratch:
        source = Path(scratch) / "source"
        for path in files:
            copy = source / path.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
        out = Path(scratch) / "out"
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                                 "-w", str(out), str(source)], capture_output=True, text=True, timeout=600)
        wheels = sorted(out.glob("edge_ai_lib-*.whl"))
        if result.returncode != 0 or not wheels:
            raise BoardError(f"building the wheel of {root} for the board failed (pip wheel exited with "
                             f"{result.returncode}):\n{result.stderr[-2000:]}\ninstall setuptools and wheel in "
                             "this environment (pip install 'setuptools>=68' wheel)")
        target.mkdir(parents=True, exist_ok=True)
        partial = target / (wheels[0].name + ".partial")
        shutil.copy2(wheels[0], partial)
        os.replace(partial, target / wheels[0].name)
    return target / wheels[0].name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manylinux_platforms(machine: str, glibc: str | None) -> list[str]:
    """pip's --platform tags a board of this architecture and glibc version can install."""
    major, minor = 2, 17
    if glibc:
        found = re.match(r"(\d+)\.(\d+)", glibc)
        if found:
            major, minor = int(found.group(1)), int(found.group(2))
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    tags.append(f"manylinux2014_{machine}")
    if machine in ("x86_64", "i686"):
        tags += [f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    tags.append(f"linux_{machine}")
    return tags


def board_requirements(wheel: Path, extra: str | None, python_version: str, machine: str) -> list[str]:
    """The requirements of our wheel with `extra`, their markers evaluated for the board's Python and machine.

    pip download evaluates markers for the Python running it, whatever --python-version says, so
    `wheel[extra]` would bring this host's choices (e.g. onnxruntime 1.32, which has no wheel for 3.9).
    Dependencies of those dependencies are still pip's to choose (their markers are rarely version ones).
    """
    import zipfile

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0",
                   "platform_machine": machine, "platform_system": "Linux", "sys_platform": "linux",
                   "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
                   "extra": extra or ""}
    requirements = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.partition(":")[2].strip())
        if requirement.marker is None or requirement.marker.evaluate(environment):
            requirement.marker = None
            requirements.append(str(requirement))
    return requirements


def build_wheelhouse(wheel: Path, extra: str | None, python_version: str, machine: str, glibc: str | None,
                     cache: Path | None = None) -> Path:
    """The wheels the board needs besides ours (its dependencies and runtime extra), for its architecture
    and Python, downloaded here once and kept in the cache; a board without a route out installs them
    with --no-index."""
    root = source_root()
    key = hashlib.sha256(json.dumps([(root / "pyproject.toml").read_text(), extra, python_version, machine,
                                     glibc]).encode()).hexdigest()[:20]
    target = (cache or cache_directory()) / "wheelhouses" / key
    if (target / ".complete").is_file():
        return target
    abi = "cp" + python_version.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--implementation", "cp",
               "--python-version", python_version, "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in manylinux_platforms(machine, glibc):
        command += ["--platform", tag]
    requirements = board_requirements(wheel, extra, python_version, machine)
    with tempfile.TemporaryDirectory(prefix="edge-ai-wheelhouse-") as scratch:
        result = subprocess.run([*command, "-d", scratch, *requirements], capture_output=True, text=True,
                                timeout=1800)
        if result.returncode != 0:
            raise BoardError(f"cannot gather the wheels of edge_ai_lib[{extra or ''}] for Python {python_version} on "
                             f"{machine} (glibc {glibc}): pip download said:\n{result.stderr[-2000:]}\nuse "
                             "packages: index if the board reaches a package index, or prepare it by hand "
                             "(no_install: true)")
        target.mkdir(parents=True, exist_ok=True)
        for path in Path(scratch).glob("*.whl"):
            if not path.name.startswith("edge_ai_lib-"):  # ours is pushed on its own, as it changes
                shutil.copy2(path, target / path.name)
    (target / ".complete").write_text("")
    return target


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_this_process() -> None:
    """In a child before exec: have Linux send it SIGTERM when this process dies (a tunnel never outlives us)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


class _UnknownHostKey(Exception):
    def __init__(self, hostname: str, key: Any):
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


def _refusing_policy():
    """A host-key policy that refuses any key not already known, keeping the key for the message."""
    import paramiko

    class Refuse(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            raise _UnknownHostKey(hostname, key)

    return Refuse()


def _fingerprint(key: Any) -> str:
    import base64

    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


class SSHBoard(Board):
    """A board reached over SSH: deploy, start the server on its loopback, forward, stop, collect.

    Each step undoes itself on failure and on Ctrl-C: `stop` (also run when the board's `with` block
    ends) kills the server by its PID, waits for its port to close, fetches its log into the results and
    closes the tunnel and the connection.
    """

    arguments = (
        # ssh_host, not host: the protocol's --host (where the client connects) shares the command line.
        Argument("ssh_host", str, help="The board's address, or a Host alias of ~/.ssh/config"),
        Argument("ssh_port", int, None, "The board's SSH port (default: ~/.ssh/config's, else 22)"),
        Argument("server_port", int, 0, "Port of the inference server on the board's loopback (0: a free one)"),
        Argument("user", str, None, "User to log in as (default: ~/.ssh/config's, else yours)"),
        Argument("key_filename", Path, None, "Private key to log in with (default: ~/.ssh/config's IdentityFile)"),
        Argument("host_key", str, None, "The board's public host key ('ssh-ed25519 AAAA...', from "
                 "/etc/ssh/ssh_host_ed25519_key.pub on the board); default: look it up in known_hosts"),
        Argument("known_hosts", Path, None, "known_hosts file holding the board's host key "
                 "(default: ~/.ssh/known_hosts)"),
        Argument("ssh_config", Path, None, "OpenSSH client config for host aliases (default: ~/.ssh/config)"),
        Argument("connect_timeout", float, 15.0, "Seconds to wait for the SSH connection and login"),
        Argument("python", str, "python3", "The board's Python (3.9 to 3.12); with no_install, the one that "
                 "already has edge_ai_lib and its runtime"),
        Argument("workdir", str, "edge-ai-tester", "Work directory on the board (relative: to the login's home): "
                 "its virtual environment, wheels, lock and server logs"),
        Argument("runtime_extra", str, None, "The extra of edge_ai_lib the board's runtime needs (onnxruntime, "
                 "litert, tvm); default: the one of the runtime benchmarked"),
        Argument("packages", str, "index", "Where the board gets its packages: its own package index, or a "
                 "wheelhouse this host downloads for the board's architecture and Python and pushes "
                 "(installed with --no-index)", choices=("index", "wheelhouse")),
        Argument("no_install", bool, False, "Install nothing: the board's python already has edge_ai_lib and "
                 "its runtime (a board prepared by hand)"),
        Argument("forwarding", str, "openssh", "How the server's port reaches this host: OpenSSH's `ssh -L` "
                 "(a subprocess of this library) or Fabric's forward_local (Python threads)",
                 choices=("openssh", "fabric")),
        Argument("environment", dict, None, "Environment variables of the server on the board"),
        Argument("log_path", Path, None, "Where the server's log is fetched to (default: a temporary file)"),
        Argument("startup_timeout", float, 120.0, "Seconds to wait for the server to listen (not counting a wait "
                 "for the board's lock)"),
        Argument("stop_timeout", float, 5.0, "Seconds a stopped server has to exit before it is killed"),
    )

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="edge-ai-ssh-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        for name in ("key_filename", "known_hosts", "ssh_config"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value).expanduser())
        if not (self.connect_timeout > 0 and math.isfinite(self.connect_timeout)):
            raise ConfigurationError(f"board '{self.name}': connect_timeout must be a positive number of seconds, "
                                     f"got {self.connect_timeout}")
        self.connection = None
        self.sftp = None
        self.channel = None
        self.pid: int | None = None
        self.remote_log: str | None = None
        self.remote_port: int | None = None
        self.tunnel: subprocess.Popen | None = None
        self.forwarder: contextlib.ExitStack | None = None
        self.known_hosts_file: Path | None = None
        self.home: str | None = None
        self.facts: dict[str, Any] = {}
        self.deploy_seconds: float | None = None
        self.deployed: str | None = None  # "installed" or "up to date"
        self.expected_extra: str | None = None

    # -- connection --------------------------------------------------------------------------------
    def address(self) -> str:
        connection = self.connection
        if connection is not None:
            return f"{connection.user}@{connection.host}:{connection.port}"
        return f"{self.user + '@' if self.user else ''}{self.ssh_host}{f':{self.ssh_port}' if self.ssh_port else ''}"

    def _connect(self):
        if self.connection is not None and self.connection.is_connected:
            return self.connection
        import paramiko
        from fabric import Config, Connection

        overrides: dict[str, Any] = {"run": {"in_stream": False, "hide": True, "warn": True}}
        config = Config(overrides=overrides, runtime_ssh_path=str(self.ssh_config) if self.ssh_config else None)
        connect_kwargs: dict[str, Any] = {"banner_timeout": self.connect_timeout, "auth_timeout": self.connect_timeout}
        if self.key_filename is not None:
            if not self.key_filename.is_file():
                raise ConfigurationError(f"board '{self.name}': key_filename {self.key_filename} does not exist: "
                                         "point it at the private key the board accepts")
            connect_kwargs.update(key_filename=str(self.key_filename), look_for_keys=False, allow_agent=False)
        connection = Connection(self.ssh_host, user=self.user, port=self.ssh_port, config=config,
                                connect_timeout=max(1, math.ceil(self.connect_timeout)),
                                connect_kwargs=connect_kwargs)
        client = connection.client
        client.set_missing_host_key_policy(_refusing_policy())
        known = self._known_hosts(connection)
        if known.is_file():
            client.get_host_keys().load(str(known))
        where = f"{connection.host}:{connection.port}"
        try:
            connection.open()
        except _UnknownHostKey as unknown:
            connection.close()
            entry = unknown.hostname
            raise BoardError(
                f"board '{self.name}' ({where}) presented the host key {_fingerprint(unknown.key)}, which is not in "
                f"{known}: it is refused rather than trusted blindly. Check it against the board "
                f"(ssh-keygen -lf /etc/ssh/ssh_host_{unknown.key.get_name().replace('ssh-', '')}_key.pub there), "
                f"then add it with `ssh-keyscan -p {connection.port} {connection.host} >> {known}` (that file "
                f"names it {entry}), or set the board's host_key to the key's public line") from None
        except paramiko.BadHostKeyException as error:
            connection.close()
            if self.host_key is not None:
                where_known = "the board's host_key setting holds"
                fix = "set host_key to the board's new public key line"
            else:
                where_known = f"{known} holds"
                fix = (f"remove the old entry with `ssh-keygen -R '[{connection.host}]:{connection.port}' -f {known}` "
                       "and add the new one")
            raise BoardError(
                f"board '{self.name}' ({where}) presented the host key {_fingerprint(error.key)}, but {where_known} "
                f"a different one ({_fingerprint(error.expected_key)}): the board was reinstalled, or this is another "
                f"machine. If the change is expected, {fix}") from None
        except paramiko.AuthenticationException as error:
            connection.close()
            key = self.key_filename or "the keys of ~/.ssh/config and the agent"
            raise BoardError(f"board '{self.name}': authentication as {connection.user} at {where} failed with "
                             f"{key} ({error}): add that key's public part to ~/.ssh/authorized_keys of "
                             f"{connection.user} on the board, or set key_filename / user to ones it accepts") from None
        except (socket.timeout, TimeoutError) as error:
            connection.close()
            raise BoardError(f"board '{self.name}': cannot reach {where} within {self.connect_timeout:g} s "
                             f"({error or 'timed out'}): check that the board is on, its address and SSH port, and "
                             "the network between (or raise connect_timeout)") from None
        except (OSError, paramiko.SSHException) as error:
            connection.close()
            raise BoardError(f"board '{self.name}': cannot connect to {where} ({error}): check that the board is "
                             "on, that sshd runs there, and its address and SSH port") from None
        self.connection = connection
        self.sftp = client.open_sftp()
        return connection

    def _known_hosts(self, connection) -> Path:
        """The known_hosts file this board's host key is checked against (a private one for host_key)."""
        if self.host_key is None:
            return self.known_hosts or Path("~/.ssh/known_hosts").expanduser()
        if self.known_hosts_file is None:
            import paramiko

            parts = self.host_key.split()
            if len(parts) < 2:
                raise ConfigurationError(f"board '{self.name}': host_key must be a public key line such as "
                                         f"'ssh-ed25519 AAAA...', got {self.host_key!r}")
            name = connection.host if connection.port == 22 else f"[{connection.host}]:{connection.port}"
            try:
                paramiko.PKey.from_type_string(parts[0], __import__("base64").b64decode(parts[1]))
            except Exception as error:
                raise ConfigurationError(f"board '{self.name}': host_key {self.host_key[:40]!r}... is not a public "
                                         f"key ({error}): copy the line of /etc/ssh/ssh_host_ed25519_key.pub on the "
                                         "board") from None
            handle, path = tempfile.mkstemp(prefix="edge-ai-known-hosts-")
            with os.fdopen(handle, "w") as file:
                file.write(f"{name} {parts[0]} {parts[1]}\n")
            self.known_hosts_file = Path(path)
        return self.known_hosts_file

    def run(self, command: str, what: str, timeout: float | None = 600) -> str:
        """Run a shell command on the board; a failure is a BoardError saying `what` failed and why."""
        connection = self._connect()
        try:
            result = connection.run(command, timeout=timeout)
        except Exception as error:  # invoke's CommandTimedOut, paramiko's errors
            raise BoardError(f"board '{self.name}': {what} failed ({type(error).__name__}: {error})") from error
        if result.exited != 0:
            raise self._command_failed(what, result.exited, result.stdout + result.stderr)
        return result.stdout

    def _command_failed(self, what: str, status: int, output: str) -> BoardError:
        """The error of a board command that exited with `status`, its output's tail and the likely fix."""
        output = output.strip()[-3000:]
        if "No space left on device" in output or "Disk quota exceeded" in output:
            return BoardError(f"{self.disk_full_message(self.workdir_path(), what)}; the command said:\n{output}")
        hint = ""
        if "ensurepip" in output or "No module named venv" in output:
            hint = f"\n'{self.python}' on the board cannot make virtual environments: install python3-venv there"
        return BoardError(f"board '{self.name}': {what} failed (exit status {status}):\n{output}{hint}")

    def free_space(self, directory: PurePosixPath) -> tuple[int, int] | None:
        """(bytes free, bytes in all) of the board's file system holding `directory` (or its nearest existing
        parent), as the board's df sees them; None when they cannot be read."""
        command = (f"d={_quote(directory)}; while [ ! -e \"$d\" ] && [ \"$d\" != / ]; do d=$(dirname \"$d\"); done; "
                   "df -Pk \"$d\"")
        try:
            result = self._connect().run(command, timeout=30)
            fields = result.stdout.strip().splitlines()[-1].split()
            return int(fields[3]) * 1024, int(fields[1]) * 1024
        except Exception:  # a message helper: the error being reported stays the one raised
            return None

    def disk_full_message(self, directory: PurePosixPath, what: str, needed: int | None = None) -> str:
        """What a full disk on the board looks like to the user: the board, the directory, the space, the fix."""
        space = self.free_space(directory)
        figures = []
        if space is not None:
            figures.append(f"{_size(space[0])} free of {_size(space[1])}")
        if needed is not None:
            figures.append(f"{_size(needed)} needed")
        figures_text = f" ({', '.join(figures)})" if figures else ""
        return (f"board '{self.name}': No space left on device in {directory} while {what}{figures_text}: free "
                f"space on the board there (df -h {directory}), or set the board's workdir to a directory on a "
                "disk with room")

    def explain_failure(self, message: str) -> str:
        if self.connection is None or ("No space left" not in message and "no space left" not in message):
            return ""
        return "\n" + self.disk_full_message(self.workdir_path(), "receiving the model" if "MODEL" in message
                                              else "serving the benchmark")

    def board_facts(self) -> dict[str, Any]:
        """The board's Python version, architecture, glibc and home directory, asked once."""
        if self.facts:
            return self.facts
        script = ("import json, os, platform, sys; print(json.dumps({'python': '%d.%d' % sys.version_info[:2], "
                  "'machine': platform.machine(), 'glibc': platform.libc_ver()[1], "
                  "'home': os.path.expanduser('~')}))")
        connection = self._connect()
        result = connection.run(f"{_quote(self.python)} -c {_quote(script)}", timeout=60)
        if result.exited != 0:
            raise BoardError(f"board '{self.name}': cannot run its Python '{self.python}' (exit status "
                             f"{result.exited}: {result.stderr.strip()[-500:]}): install Python 3.9 to 3.12 there, "
                             "or set the board's python to its path")
        self.facts = json.loads(result.stdout.strip().splitlines()[-1])
        version = tuple(int(part) for part in self.facts["python"].split("."))
        if not (3, 9) <= version < (3, 13):
            raise BoardError(f"board '{self.name}': its Python '{self.python}' is {self.facts['python']}; "
                             "edge_ai_lib runs on 3.9 to 3.12: set the board's python to one of those")
        return self.facts

    def workdir_path(self) -> PurePosixPath:
        workdir = PurePosixPath(self.workdir)
        if workdir.is_absolute():
            return workdir
        return PurePosixPath(self.board_facts()["home"]) / workdir

    def server_python(self) -> str:
        return self.python if self.no_install else str(self.workdir_path() / "venv" / "bin" / "python")

    def lock_path(self) -> PurePosixPath:
        return self.workdir_path() / (re.sub(r"[^A-Za-z0-9._-]", "_", self.name) + ".lock")

    # -- deploy ------------------------------------------------------------------------------------
    def runtime_extra_for(self, server_spec: dict[str, Any] | None) -> str | None:
        if self.runtime_extra:
            return self.runtime_extra
        runtime = ((server_spec or {}).get("runtime") or {}).get("class", "")
        return RUNTIME_EXTRAS.get(runtime.rpartition(".")[0])

    def deploy(self, server_spec: dict[str, Any] | None = None) -> None:
        """Make sure the board has this build of edge_ai_lib and the runtime's extra, in its work directory.

        Installs only when the venv is missing or the sha256 of the wheel (recorded on the board, with the
        extra) differs; under the board's lock, so no other host reinstalls beneath a running benchmark.
        """
        started = time.monotonic()
        self._connect()
        facts = self.board_facts()
        extra = self.runtime_extra_for(server_spec)
        if self.no_install:
            self.check_packages(extra)
            self.deployed = "prepared by hand"
            self.deploy_seconds = time.monotonic() - started
            return
        wheel = build_wheel()
        wanted = {"wheel": wheel.name, "wheel_sha256": file_sha256(wheel), "extra": extra, "packages": self.packages}
        workdir = self.workdir_path()
        venv_python = workdir / "venv" / "bin" / "python"
        current = self.connection.run(f"test -x {_quote(venv_python)} && cat {_quote(workdir / INSTALLED_RECORD)}",
                                      timeout=60)
        try:
            recorded = json.loads(current.stdout) if current.exited == 0 else None
        except ValueError:
            recorded = None
        if recorded == wanted:
            self.deployed = "up to date"
            self.deploy_seconds = time.monotonic() - started
            return
        self.run(f"mkdir -p {_quote(workdir / 'wheels')} {_quote(workdir / 'wheelhouse')}",
                 f"creating its work directory {workdir}")
        self._put(wheel, workdir / "wheels" / wheel.name)
        pip = f"{_quote(venv_python)} -m pip install -q --disable-pip-version-check --no-input"
        if self.packages == "wheelhouse":
            house = build_wheelhouse(wheel, extra, facts["python"], facts["machine"], facts["glibc"] or None)
            present = set(self.sftp.listdir(str(workdir / "wheelhouse")))
            for path in sorted(house.glob("*.whl")):
                if path.name not in present:
                    self._put(path, workdir / "wheelhouse" / path.name)
            pip = f"PIP_CONFIG_FILE=/dev/null {pip} --no-index --find-links {_quote(workdir / 'wheelhouse')}"
        requirement = f"{workdir / 'wheels' / wheel.name}[{extra}]" if extra else str(workdir / "wheels" / wheel.name)
        record = json.dumps(wanted)
        install = " && ".join([
            f"{{ test -x venv/bin/python || {_quote(self.python)} -m venv venv; }}",
            "{ venv/bin/python -m pip uninstall -q -y edge_ai_lib >/dev/null 2>&1 || true; }",
            f"{pip} {_quote(requirement)}",
            f"printf '%s' {_quote(record)} > {INSTALLED_RECORD}",
        ])
        # A failed install leaves no half-made environment behind, nor the space it took (a full disk).
        steps = (f"cd {_quote(workdir)} && {{ {install} || {{ status=$?; rm -rf venv {INSTALLED_RECORD}; "
                 "exit $status; }; }")
        self._under_lock(steps, "installing edge_ai_lib" + (f"[{extra}]" if extra else ""))
        self.check_packages(extra)
        self.deployed = "installed"
        self.deploy_seconds = time.monotonic() - started
        log.info("board '%s': edge_ai_lib%s installed in %s (%.1f s)", self.name, f"[{extra}]" if extra else "",
                 workdir / "venv", self.deploy_seconds)

    def check_packages(self, extra: str | None) -> None:
        """Fail before starting anything when the board's Python lacks edge_ai_lib or the runtime's package."""
        modules = ["edge_ai_lib"] + ([EXTRA_MODULES[extra]] if extra in EXTRA_MODULES else [])
        script = ("import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] "
                  "if importlib.util.find_spec(m) is None))")
        result = self._connect().run(f"{_quote(self.server_python())} -c {_quote(script)} {' '.join(modules)}",
                                     timeout=60)
        missing = result.stdout.split() if result.exited == 0 else modules
        if not missing:
            return
        wanted = f"edge_ai_lib[{extra}]" if extra else "edge_ai_lib"
        package = "edge_ai_lib" if "edge_ai_lib" in missing else missing[0]
        what = f"the package '{package}'" + (f" (of the runtime extra '{extra}')" if package != "edge_ai_lib" else "")
        fix = (f"install it there (pip install '{wanted}'), or drop no_install so the benchmark installs it"
               if self.no_install else f"set the board's runtime_extra (now {extra}) to the extra that provides it")
        raise BoardError(f"board '{self.name}': its Python {self.server_python()} lacks {what}: {fix}")

    def _under_lock(self, steps: str, what: str) -> str:
        """Run shell `steps` on the board holding its lock (flock), waiting up to lock_timeout for it."""
        lock = self.lock_path()
        command = (f"if command -v flock >/dev/null; then flock -w {self.lock_timeout:g} -E {LOCK_BUSY_STATUS} "
                   f"{_quote(lock)} sh -c {_quote(steps)}; else sh -c {_quote(steps)}; fi")
        connection = self._connect()
        result = connection.run(command, timeout=self.lock_timeout + 1800)
        if result.exited == LOCK_BUSY_STATUS:
            from edge_ai_lib.boards.lock import _describe_holder

            holder = connection.run(f"cat {_quote(lock)}", timeout=60).stdout
            raise BoardError(f"board '{self.name}' is still in use by {_describe_holder(holder)} after waiting "
                             f"{self.lock_timeout:g} s (its lock {lock}): wait for that benchmark to finish, or "
                             "raise the board lock timeout (benchmark.board_lock_timeout in the config)")
        if result.exited != 0:
            raise self._command_failed(what, result.exited, result.stdout + result.stderr)
        return result.stdout

    def _put(self, local: Path, remote: PurePosixPath) -> None:
        partial = f"{remote}.partial"
        try:
            self.sftp.put(str(local), partial)
            self.sftp.posix_rename(partial, str(remote))
        except OSError as error:
            with contextlib.suppress(OSError):
                self.sftp.remove(partial)
            size = local.stat().st_size
            space = self.free_space(remote.parent)
            if space is not None and space[0] < size + (1 << 20):  # SFTP reports a full disk as a bare "Failure"
                raise BoardError(self.disk_full_message(remote.parent, f"uploading {local.name}", size)) from error
            raise BoardError(f"board '{self.name}': uploading {local.name} to {remote} failed ({error}): check the "
                             f"space left there (df -h {remote.parent}) and that it is writable") from error

    # -- the server --------------------------------------------------------------------------------
    def start(self, server_spec: dict[str, Any]) -> tuple[str, int]:
        try:
            return self._start(server_spec)
        except BaseException:
            self.stop()
            raise

    def _start(self, server_spec: dict[str, Any]) -> tuple[str, int]:
        from edge_ai_lib.boards.lock import holder_description

        connection = self._connect()
        workdir = self.workdir_path()
        self.expected_extra = self.runtime_extra_for(server_spec)
        protocol = server_spec["protocol"]
        spec = {**server_spec, "protocol": {**protocol, "args": {**protocol.get("args", {}),
                                                                 "host": "127.0.0.1", "port": self.server_port}}}
        spec["options"] = {**spec.get("options", {}), "stop_with_fd": 0, "lock_directory": str(workdir),
                           "lock_name": self.name, "lock_timeout": self.lock_timeout,
                           "lock_holder": holder_description()}
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.remote_log = str(workdir / "logs" / f"server-{stamp}-{socket.gethostname()}-{os.getpid()}.log")
        environment = " ".join(f"{key}={_quote(value)}" for key, value in (self.environment or {}).items())
        command = (f"mkdir -p {_quote(workdir / 'logs')} && cd {_quote(workdir)} && echo $$ && "
                   f"exec env PYTHONUNBUFFERED=1 {environment} {_quote(self.server_python())} -m "
                   f"edge_ai_lib.scenarios.inference_server --spec {_quote(json.dumps(spec))} "
                   f"> {_quote(self.remote_log)} 2>&1")
        # The server's stdin is this channel: when this host's connection ends, however, the server stops.
        self.channel = connection.client.get_transport().open_session(timeout=self.connect_timeout)
        self.channel.exec_command(command)
        self.pid = self._read_pid()
        self.remote_port = self._wait_listening()
        return "127.0.0.1", self._forward(self.remote_port)

    def _read_pid(self) -> int:
        deadline = time.monotonic() + self.connect_timeout
        received = b""
        self.channel.settimeout(0.2)
        while b"\n" not in received and time.monotonic() < deadline:
            with contextlib.suppress(socket.timeout):
                chunk = self.channel.recv(64)
                if not chunk:
                    break
                received += chunk
        try:
            return int(received.split(b"\n")[0])
        except ValueError:
            status = self.channel.recv_exit_status() if self.channel.exit_status_ready() else None
            error = self.channel.recv_stderr(4096).decode(errors="replace") if self.channel.recv_stderr_ready() else ""
            raise BoardError(f"board '{self.name}': the command starting the server failed (exit status {status}): "
                             f"{error.strip() or received.decode(errors='replace')}: check that the work directory "
                             f"{self.workdir_path()} is writable") from None

    def _remote_log_text(self) -> str:
        try:
            with self.sftp.open(self.remote_log, "r") as handle:
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def _wait_listening(self) -> int:
        deadline = time.monotonic() + self.startup_timeout + self.lock_timeout
        while time.monotonic() < deadline:
            for line in self._remote_log_text().splitlines():
                if line.startswith(LISTENING):
                    return int(line[len(LISTENING):].strip().rpartition(":")[2])
            if self.channel.exit_status_ready():
                status = self.channel.recv_exit_status()
                tail = self._remote_log_text().strip().splitlines()[-20:]
                text = "\n".join(tail)
                space = self.free_space(self.workdir_path())
                if "No space left" in text or (space is not None and space[0] < DISK_NEARLY_FULL):
                    raise BoardError(f"{self.disk_full_message(self.workdir_path(), 'starting the server')}; the "
                                     f"server exited with status {status} before listening, its log "
                                     f"({self.remote_log}) ending with:\n{text}")
                raise BoardError(f"the inference server on board '{self.name}' exited with status {status} before "
                                 f"listening; its log ({self.remote_log} on the board) ends with:\n{text}"
                                 f"{self._startup_hint(text)}")
            time.sleep(0.05)
        raise BoardError(f"the inference server on board '{self.name}' did not listen within "
                         f"{self.startup_timeout + self.lock_timeout:g} s; its log ({self.remote_log} on the board) "
                         f"ends with:\n{self._remote_log_text()[-2000:]}")

    def _startup_hint(self, log_text: str) -> str:
        missing = re.search(r"needs the package '([^']+)'", log_text)
        if not missing:
            return ""
        extra = self.expected_extra or "EXTRA"
        if self.no_install:
            return (f"\nboard '{self.name}': its Python {self.python} lacks the package '{missing.group(1)}' of the "
                    f"runtime: install edge_ai_lib[{extra}] there (pip install 'edge_ai_lib[{extra}]'), or drop "
                    "no_install so the benchmark installs it")
        return (f"\nboard '{self.name}': its environment lacks the package '{missing.group(1)}' of the runtime: set "
                f"the board's runtime_extra (now {self.expected_extra or 'unset'}) to the extra that provides it")

    def _forward(self, remote_port: int) -> int:
        if self.forwarding == "fabric":
            local_port = _free_loopback_port()
            self.forwarder = contextlib.ExitStack()
            self.forwarder.enter_context(self.connection.forward_local(
                local_port, remote_port=remote_port, remote_host="127.0.0.1", local_host="127.0.0.1"))
            return local_port
        return self._openssh_tunnel(remote_port)

    def ssh_command(self) -> list[str]:
        """OpenSSH's client with this board's settings: the same host key check, key, user and port."""
        connection = self.connection
        command = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                   "-o", f"ConnectTimeout={max(1, math.ceil(self.connect_timeout))}",
                   "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if self.ssh_config is not None:
            command += ["-F", str(self.ssh_config)]
        if self.host_key is not None or self.known_hosts is not None:
            command += ["-o", f"UserKnownHostsFile={self._known_hosts(connection)}"]
        if self.key_filename is not None:
            command += ["-i", str(self.key_filename), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
        if self.ssh_port is not None:
            command += ["-p", str(self.ssh_port)]
        if self.user is not None:
            command += ["-l", self.user]
        return [*command, self.ssh_host]  # an alias is resolved by ssh itself, as Fabric resolved it

    def _openssh_tunnel(self, remote_port: int) -> int:
        import psutil

        if shutil.which("ssh") is None:
            raise BoardError("OpenSSH's ssh client is not installed on this host: install openssh-client, or set "
                             f"board '{self.name}''s forwarding: fabric")
        for _ in range(3):  # a free port may be taken between choosing it and ssh binding it
            local_port = _free_loopback_port()
            command = self.ssh_command()
            command[1:1] = ["-N", "-T", "-o", "ExitOnForwardFailure=yes",
                            "-L", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}"]
            self.tunnel = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, preexec_fn=_die_with_this_process)
            deadline = time.monotonic() + self.connect_timeout + 5
            process = psutil.Process(self.tunnel.pid)
            while time.monotonic() < deadline and self.tunnel.poll() is None:
                with contextlib.suppress(psutil.Error):
                    if any(c.status == psutil.CONN_LISTEN and c.laddr.port == local_port
                           for c in process.net_connections(kind="tcp")):
                        return local_port
                time.sleep(0.02)
            if self.tunnel.poll() is None:
                self._close_tunnel()
                raise BoardError(f"board '{self.name}': the SSH tunnel did not open within "
                                 f"{self.connect_timeout + 5:g} s")
            error = self.tunnel.stderr.read().decode(errors="replace").strip()
            self.tunnel = None
            if "forward" not in error.lower():
                raise BoardError(f"board '{self.name}': the SSH tunnel to the server failed: {error[-1000:]}")
        raise BoardError(f"board '{self.name}': no local port could be forwarded to the server: {error[-500:]}")

    def _close_tunnel(self) -> None:
        if self.tunnel is not None:
            if self.tunnel.poll() is None:
                self.tunnel.terminate()
                try:
                    self.tunnel.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.tunnel.kill()
                    self.tunnel.wait(timeout=5)
            if self.tunnel.stderr is not None:
                self.tunnel.stderr.close()
            self.tunnel = None
        if self.forwarder is not None:
            forwarder, self.forwarder = self.forwarder, None
            with contextlib.suppress(Exception):
                forwarder.close()

    def alive(self) -> bool:
        return self.channel is not None and not self.channel.exit_status_ready()

    def exit_status(self) -> int | None:
        if self.channel is None:
            return None
        deadline = time.monotonic() + 1.0
        while not self.channel.exit_status_ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.channel.recv_exit_status() if self.channel.exit_status_ready() else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        if not text and self.sftp is not None and self.remote_log:
            text = self._remote_log_text()
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server by its PID, wait for its port to close, fetch its log, close tunnel and connection.

        Each step runs even when an earlier one fails; failures are logged, not raised, so that the error
        that led here stays the one reported.
        """
        steps = (self._close_tunnel, self._stop_server, self._wait_port_closed, self._fetch_log,
                 self._disconnect)
        for step in steps:
            try:
                step()
            except Exception as error:  # cleanup goes on: the board must be left as it was found
                log.warning("board '%s': %s failed while stopping: %s", self.name, step.__name__.strip("_"), error)

    def _stop_server(self) -> None:
        if self.pid is None or self.channel is None:
            return
        for signal_name, wait in (("TERM", self.stop_timeout), ("KILL", 10.0)):
            if self.channel.exit_status_ready():
                break
            self.connection.run(f"kill -{signal_name} {self.pid}", timeout=30)
            deadline = time.monotonic() + wait
            while not self.channel.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(0.02)
        if not self.channel.exit_status_ready():
            raise BoardError(f"the server (pid {self.pid}) on board '{self.name}' did not exit after SIGKILL")

    def _wait_port_closed(self) -> None:
        if self.remote_port is None or self.connection is None:
            return
        probe = ("import socket, sys, time\n"
                 "for _ in range(200):\n"
                 "    with socket.socket() as s:\n"
                 f"        if s.connect_ex(('127.0.0.1', {self.remote_port})) != 0: sys.exit(0)\n"
                 "    time.sleep(0.05)\n"
                 "sys.exit(1)\n")
        result = self.connection.run(f"{_quote(self.server_python())} -c {_quote(probe)}", timeout=30)
        if result.exited != 0:
            raise BoardError(f"port {self.remote_port} on board '{self.name}' is still open 10 s after its server "
                             "stopped")
        self.remote_port = None

    def _fetch_log(self) -> None:
        if self.remote_log is None or self.sftp is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.sftp.get(self.remote_log, str(self.log_path))
        with contextlib.suppress(OSError):
            self.sftp.remove(self.remote_log)
        self.remote_log = None

    def _disconnect(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self.pid = None
        if self.sftp is not None:
            with contextlib.suppress(Exception):
                self.sftp.close()
            self.sftp = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.known_hosts_file is not None:
            with contextlib.suppress(OSError):
                self.known_hosts_file.unlink()
            self.known_hosts_file = None

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described.update(address=self.address(), deploy=self.deployed, deploy_s=self.deploy_seconds,
                         board_python=self.facts.get("python"), forwarding=self.forwarding)
        return described
