"""An emulated aarch64 Linux board on this host: an arm64 Debian rootfs under qemu-user, reached over SSH.

`up` makes the board: an arm64 Debian bookworm rootfs (built once with mmdebstrap, kept as a zstd
tarball in the cache directory and restored from it in seconds), `edge_ai_lib` and the runtime extras
installed into a virtual environment of the rootfs by this host's pip from aarch64 wheels (nothing runs
pip under emulation), then a native sshd on 127.0.0.1 whose logins are chrooted into the rootfs
(`ChrootDirectory`), where every program is an aarch64 binary run by qemu-user through binfmt_misc.
It prints the board's config entry: an ordinary `SSHBoard` of architecture aarch64 (with `no_install`:
the board is prepared here, and `emulated: true`, which reaches every result so reports never take
its timings for an arm chip's). `down` stops what `up` started, by PID, and unmounts what it mounted.

Measured pitfalls this module handles: ONNX Runtime segfaults at import under qemu-user unless the
chroot sees an arm64 /proc/cpuinfo (a file of ours is bind-mounted over it; /sys is not mounted);
qemu's default CPU (`max`) advertises SVE and SME, whose code paths run ~15x slower emulated, so the
sessions get QEMU_CPU (sshd passes it with SetEnv); `ChrootDirectory` must be root-owned all the way up
and outside world-writable directories such as /tmp.

    python -m edge_ai_lib.boards.emulated up|down|status [--name aarch64] [--port 47022]

Root is needed (mounts, chroot, sshd), as are Debian's mmdebstrap (for the first build only),
qemu-user-static, binfmt-support, openssh-server and zstd.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edge_ai_lib.core.errors import BoardError, ConfigurationError

SUITE = "bookworm"
DEBIAN_ARCHITECTURE = "arm64"
MACHINE = "aarch64"
# python3-venv for the board's virtual environment, libgomp1 for TVM's and ONNX Runtime's threads, procps
# and iproute2 for looking around on the board.
PACKAGES = ("python3", "python3-venv", "libgomp1", "procps", "iproute2")
# Documentation and translations are of no use on the board: a smaller rootfs, a faster restore.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
EXTRAS = ("onnxruntime", "litert", "tvm")
QEMU_CPU = "neoverse-n1"
# What /proc/cpuinfo says per core: an Arm Neoverse-N1 (the CPU qemu emulates with QEMU_CPU above).
CPUINFO_CORE = ("processor\t: {index}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 "
                "atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\n"
                "CPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n")
VENV = "/opt/edge-ai/venv"
BOARD_WORKDIR = "/root/edge-ai-tester"
DEFAULT_NAME = "aarch64"
DEFAULT_PORT = 47022
BOARDS_ROOT = Path("/var/lib/edge-ai-tester/emulated")
QEMU_BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
ROOTFS_MARKER = ".edge-ai-rootfs"
INSTALLED_RECORD = "edge-ai-installed.json"
# Bumped when the way the rootfs is built changes, so an old tarball is not restored.
ROOTFS_RECIPE = 1


def _run(command: list[str], what: str, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run `command`; a failure is a BoardError naming `what` and the command's output's tail."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    except FileNotFoundError as error:
        raise BoardError(f"{what} failed: {command[0]} is not installed ({error})") from None
    except subprocess.TimeoutExpired:
        raise BoardError(f"{what} did not finish within {timeout:g} s ({' '.join(command[:3])} ...)") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise BoardError(f"{what} failed (exit status {result.returncode}):\n{output}")
    return result


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources")) -> str:
    """The Debian mirror this host uses (its deb822 sources), so the board's packages come from the same place."""
    with contextlib.suppress(OSError):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def cache_directory() -> Path:
    from edge_ai_lib.boards.ssh import cache_directory as shared

    return shared()


def ensure_binfmt() -> None:
    """Make the kernel run aarch64 programs through qemu-user (binfmt_misc mounted, Debian's entry enabled).

    Debian's entry has the F flag: the kernel opens the interpreter once, so chroots need no copy of it.
    """
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)], "mounting binfmt_misc")
    if not QEMU_BINFMT.exists():
        if shutil.which("update-binfmts") is None or not Path("/usr/bin/qemu-aarch64-static").exists():
            raise BoardError("aarch64 programs cannot run here: install Debian's qemu-user-static and binfmt-support "
                             "(apt-get install qemu-user-static binfmt-support)")
        _run(["update-binfmts", "--enable", "qemu-aarch64"], "registering qemu-aarch64 with binfmt_misc")
    text = QEMU_BINFMT.read_text()
    if not text.startswith("enabled"):
        _run(["update-binfmts", "--enable", "qemu-aarch64"], "enabling qemu-aarch64 in binfmt_misc")
    flags = re.search(r"^flags:\s*(\S*)", QEMU_BINFMT.read_text(), re.M)
    if flags is None or "F" not in flags.group(1):
        raise BoardError(f"{QEMU_BINFMT} lacks the F flag, so a chroot would need its own qemu: install Debian's "
                         "qemu-user-static (its entry has it) and run `update-binfmts --enable qemu-aarch64`")


def _mount_points_under(path: Path) -> list[str]:
    """Mount points at or under `path`, deepest first (the order to unmount them)."""
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=lambda p: (-p.count("/"), p))


def _processes_rooted_in(path: Path) -> list[int]:
    """PIDs of processes whose root directory is `path`: what the board's sessions run."""
    pids = []
    target = str(path)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "root") == target:
                    pids.append(int(entry.name))
    return pids


def _port_listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop_pids(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM each PID, then SIGKILL those still alive after `timeout` seconds."""
    import psutil

    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            process.terminate()
            processes.append(process)
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)


class EmulatedBoardProvisioner:
    """Makes, starts, describes and stops one emulated aarch64 board.

    Parameters
    ----------
    name : str
        The board's name: its directory (`/var/lib/edge-ai-tester/emulated/NAME`) and config key
        (`emulated-NAME`).
    directory : Path
        Where the board lives (rootfs, sshd's files, state); must not be under a world-writable
        directory (sshd's ChrootDirectory refuses it).
    port : int
        sshd's port on 127.0.0.1 (0: a free one).
    cache : Path
        Where the rootfs tarball, wheels and wheelhouses are kept (default: $EDGE_AI_CACHE_DIR, else
        ~/.cache/edge-ai-tester).
    """

    def __init__(self, name: str = DEFAULT_NAME, directory: Path | None = None, port: int = DEFAULT_PORT,
                 cache: Path | None = None, mirror: str | None = None, qemu_cpu: str = QEMU_CPU,
                 extras: tuple[str, ...] = EXTRAS, log=print):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ConfigurationError(f"board name {name!r} must be letters, digits, '.', '_' or '-'")
        self.name = name
        self.directory = Path(directory or BOARDS_ROOT / name).absolute()
        self.port = port
        self.cache = Path(cache) if cache else cache_directory()
        self.mirror = mirror or debian_mirror()
        self.qemu_cpu = qemu_cpu
        self.extras = tuple(extras)
        self.log = log
        self.rootfs = self.directory / "rootfs"
        self.ssh_dir = self.directory / "ssh"
        self.state_file = self.directory / "state.json"
        self.timings: dict[str, float] = {}

    # -- the rootfs --------------------------------------------------------------------------------
    def rootfs_key(self) -> str:
        recipe = [ROOTFS_RECIPE, SUITE, DEBIAN_ARCHITECTURE, sorted(PACKAGES), sorted(DPKG_EXCLUDES), self.mirror]
        return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]

    def tarball(self) -> Path:
        return self.cache / "rootfs" / f"debian-{SUITE}-{DEBIAN_ARCHITECTURE}-{self.rootfs_key()}.tar.zst"

    def _check_directory(self) -> None:
        """sshd's ChrootDirectory: every component root-owned and writable by root only."""
        for part in [self.directory, *self.directory.parents]:
            if not part.exists():
                continue
            info = part.stat()
            if info.st_uid != 0 or info.st_mode & 0o022:
                raise ConfigurationError(
                    f"the board directory {self.directory} is under {part}, which is not owned by root or is "
                    "writable by others (e.g. /tmp): sshd refuses to chroot there; use a directory such as "
                    f"{BOARDS_ROOT / self.name}")

    def prepare_rootfs(self) -> str:
        """The rootfs in place: kept if already made from this recipe, else restored or built. Returns how."""
        key = self.rootfs_key()
        marker = self.rootfs / ROOTFS_MARKER
        if marker.is_file() and marker.read_text().strip() == key:
            return "kept"
        if self.rootfs.exists():
            self._remove_rootfs()
        tarball = self.tarball()
        partial = self.directory / "rootfs.partial"
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(mode=0o755)
        try:
            if tarball.is_file():
                started = time.monotonic()
                _run(["tar", "--zstd", "-xpf", str(tarball), "--numeric-owner", "-C", str(partial)],
                     f"restoring the rootfs from {tarball}", timeout=600)
                how = "restored"
                self.timings["rootfs_restore_s"] = time.monotonic() - started
            else:
                self._build_rootfs(partial, tarball)
                how = "built"
        except BaseException:
            if not _mount_points_under(partial):  # mmdebstrap unmounts what it mounted, even on failure
                shutil.rmtree(partial, ignore_errors=True)
            raise
        (partial / ROOTFS_MARKER).write_text(key + "\n")
        os.chmod(partial, 0o755)
        os.replace(partial, self.rootfs)
        return how

    def _build_rootfs(self, target: Path, tarball: Path) -> None:
        missing = [tool for tool in ("mmdebstrap", "arch-test") if shutil.which(tool) is None]
        if missing:
            raise BoardError(f"building the board's rootfs needs {' and '.join(missing)}: apt-get install "
                             f"{' '.join(missing)} (or copy a rootfs tarball made elsewhere to {tarball})")
        self.log(f"building an arm64 Debian {SUITE} rootfs with mmdebstrap from {self.mirror} (once; cached as "
                 f"{tarball})")
        started = time.monotonic()
        command = ["mmdebstrap", "--mode=root", f"--arch={DEBIAN_ARCHITECTURE}", "--variant=apt",
                   f"--include={','.join(PACKAGES)}", *[f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES],
                   "--dpkgopt=path-include=/usr/share/doc/*/copyright", SUITE, str(target), self.mirror]
        _run(command, "building the rootfs (mmdebstrap)", timeout=1800)
        self.timings["rootfs_build_s"] = time.monotonic() - started
        started = time.monotonic()
        tarball.parent.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_name(tarball.name + ".partial")
        _run(["tar", "--zstd", "--numeric-owner", "-cpf", str(partial), "-C", str(target), "."],
             f"packing the rootfs into {partial}", timeout=600)
        os.replace(partial, tarball)
        self.timings["rootfs_pack_s"] = time.monotonic() - started

    def _remove_rootfs(self) -> None:
        mounted = _mount_points_under(self.rootfs)
        if mounted:
            raise BoardError(f"cannot replace the rootfs {self.rootfs}: {', '.join(mounted)} still mounted; run "
                             f"`python -m edge_ai_lib.boards.emulated down --name {self.name}` first")
        shutil.rmtree(self.rootfs)

    def board_python_version(self) -> str:
        versions = sorted(p.name[len("python"):] for p in (self.rootfs / "usr/lib").glob("python3.*")
                          if re.fullmatch(r"python3\.\d+", p.name))
        if not versions:
            raise BoardError(f"the rootfs {self.rootfs} has no Python 3: remove it and run up again")
        return versions[-1]

    def board_glibc(self) -> str | None:
        status = (self.rootfs / "var/lib/dpkg/status").read_text()
        found = re.search(r"^Package: libc6\n(?:[^\n]+\n)*?Version: (\d+\.\d+)", status, re.M)
        return found.group(1) if found else None

    # -- edge_ai_lib in the rootfs ---------------------------------------------------------------
    def install_library(self) -> str:
        """edge_ai_lib[extras] in the rootfs's venv, installed by this host's pip for aarch64 (no emulated pip).

        Only edge_ai_lib itself is replaced when the wheel of this checkout changes; the rest stays.
        """
        from edge_ai_lib.boards.ssh import (
            build_wheel,
            build_wheelhouse,
            file_sha256,
            manylinux_platforms,
        )

        started = time.monotonic()
        python_version, glibc = self.board_python_version(), self.board_glibc()
        wheel = build_wheel(self.cache)
        venv = self.rootfs / VENV.lstrip("/")
        site = venv / "lib" / f"python{python_version}" / "site-packages"
        record_path = venv / INSTALLED_RECORD
        wanted = {"wheel": wheel.name, "wheel_sha256": file_sha256(wheel), "extras": sorted(self.extras)}
        recorded = None
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads(record_path.read_text())
        if recorded == wanted:
            return "up to date"
        houses = [build_wheelhouse(wheel, extra, python_version, MACHINE, glibc, self.cache) for extra in self.extras]
        if not (venv / "bin" / "python").exists():
            # The one step under emulation: the venv module of the board's own Python (a second or so).
            self._chroot_run(["/usr/bin/python3", "-m", "venv", "--without-pip", VENV], "creating the board's venv")
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-input",
               "--no-index", "--only-binary", ":all:", "--implementation", "cp", "--python-version", python_version,
               "--abi", "cp" + python_version.replace(".", ""), "--abi", "abi3", "--abi", "none",
               "--target", str(site), "--upgrade"]
        for tag in manylinux_platforms(MACHINE, glibc):
            pip += ["--platform", tag]
        environment = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
        if recorded is None:
            for house in houses:
                pip += ["--find-links", str(house)]
            pip += ["--find-links", str(wheel.parent), f"edge_ai_lib[{','.join(self.extras)}]"]
            how = "installed"
        else:  # dependencies in place: swap our own package only
            for path in [*site.glob("edge_ai_lib"), *site.glob("edge_ai_lib-*.dist-info")]:
                shutil.rmtree(path)
            pip += ["--no-deps", str(wheel)]
            how = "updated"
        record_path.unlink(missing_ok=True)
        _run(pip, f"installing edge_ai_lib[{','.join(self.extras)}] for aarch64 into {site}", timeout=1800,
             env=environment)
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts with this host's shebang
        record_path.write_text(json.dumps(wanted))
        self.timings["install_s"] = time.monotonic() - started
        return how

    def _chroot_run(self, command: list[str], what: str, timeout: float = 300) -> str:
        environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                       "LANG": "C.UTF-8", "QEMU_CPU": self.qemu_cpu}
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        return _run([chroot, str(self.rootfs), *command], what, timeout=timeout, env=environment).stdout

    # -- mounts ------------------------------------------------------------------------------------
    def mount(self) -> list[str]:
        """/proc in the rootfs with an arm64 /proc/cpuinfo over it, the device nodes a shell needs, and the
        CPU lists of /sys as plain files."""
        dev = self.rootfs / "dev"
        for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                                   ("urandom", 1, 9), ("tty", 5, 0)):
            node = dev / name
            if not node.is_char_device():
                node.unlink(missing_ok=True)
                os.mknod(node, 0o666 | 0o020000, os.makedev(major, minor))
                os.chmod(node, 0o666)
        (dev / "shm").mkdir(mode=0o1777, exist_ok=True)
        cores = os.cpu_count() or 1
        cpuinfo = self.directory / "cpuinfo"
        cpuinfo.write_text("".join(CPUINFO_CORE.format(index=i) for i in range(cores)))
        # No sysfs (the host's, an x86 one, makes ONNX Runtime crash under qemu), but the core lists that
        # the runtimes' cpuinfo library reads, in plain files of the rootfs.
        cpus = self.rootfs / "sys/devices/system/cpu"
        cpus.mkdir(parents=True, exist_ok=True)
        for name in ("possible", "present", "online"):
            (cpus / name).write_text(f"0-{cores - 1}\n" if cores > 1 else "0\n")
        proc = self.rootfs / "proc"
        proc.mkdir(exist_ok=True)
        if str(proc) not in _mount_points_under(proc):
            _run(["mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(proc)], "mounting /proc in the rootfs")
        if str(proc / "cpuinfo") not in _mount_points_under(proc / "cpuinfo"):
            _run(["mount", "--bind", str(cpuinfo), str(proc / "cpuinfo")], "bind-mounting an arm64 /proc/cpuinfo")
            _run(["mount", "-o", "remount,bind,ro", str(proc / "cpuinfo")], "making /proc/cpuinfo read-only")
        return _mount_points_under(self.rootfs)

    def unmount(self) -> list[str]:
        """Unmount everything under the rootfs (deepest first); returns what was unmounted."""
        done = []
        for point in _mount_points_under(self.rootfs):
            result = subprocess.run(["umount", point], capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                _stop_pids(_processes_rooted_in(self.rootfs))
                _run(["umount", point], f"unmounting {point}", timeout=60)
            done.append(point)
        return done

    # -- sshd --------------------------------------------------------------------------------------
    def _keys(self) -> tuple[Path, Path]:
        self.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        host_key, client_key = self.ssh_dir / "ssh_host_ed25519_key", self.ssh_dir / "client_ed25519"
        for key, comment in ((host_key, f"edge-ai-emulated-{self.name}-host"),
                             (client_key, f"edge-ai-emulated-{self.name}-client")):
            if not key.is_file():
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                     f"making the key {key}")
        authorized = self.ssh_dir / "authorized_keys"
        authorized.write_text(client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        return host_key, client_key

    def host_public_key(self) -> str:
        parts = (self.ssh_dir / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{parts[0]} {parts[1]}"

    def _sshd_config(self, port: int, host_key: Path) -> Path:
        config = self.ssh_dir / "sshd_config"
        user = getpass.getuser()
        lines = [f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
                 f"PidFile {self.ssh_dir / 'sshd.pid'}", f"AuthorizedKeysFile {self.ssh_dir / 'authorized_keys'}",
                 f"AllowUsers {user}", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                 "PermitRootLogin prohibit-password", "AllowTcpForwarding local", "X11Forwarding no",
                 "PermitTunnel no", "AllowAgentForwarding no", "PrintMotd no", "PrintLastLog no",
                 f"ChrootDirectory {self.rootfs}", "Subsystem sftp internal-sftp",
                 f"SetEnv QEMU_CPU={self.qemu_cpu} LANG=C.UTF-8", "MaxStartups 50", "MaxSessions 50",
                 "LogLevel INFO"]
        config.write_text("\n".join(lines) + "\n")
        return config

    def _start_sshd(self) -> tuple[int, int]:
        host_key, _ = self._keys()
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
        log = self.ssh_dir / "sshd.log"
        for _ in range(3):  # a free port may be taken before sshd binds it
            port = self.port or _free_port()
            if _port_listening(port):
                raise BoardError(f"port {port} on 127.0.0.1 is already in use: pass --port with another one "
                                 "(0: a free one), or stop what listens there")
            config = self._sshd_config(port, host_key)
            _run(["/usr/sbin/sshd", "-t", "-f", str(config)], f"checking sshd's config {config}")
            with open(log, "ab") as handle:
                process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                           stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                if _port_listening(port):
                    return process.pid, port
                time.sleep(0.02)
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if self.port:
                break
        raise BoardError(f"the board's sshd did not start; its log ({log}) ends with:\n{log.read_text()[-2000:]}")

    def ssh_command(self, port: int) -> list[str]:
        return ["ssh", "-p", str(port), "-i", str(self.ssh_dir / "client_ed25519"), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.ssh_dir / 'known_hosts'}", "-l", getpass.getuser(), "127.0.0.1"]

    # -- up, down, status --------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.state_file.read_text())
        return None

    def _sshd_alive(self, state: dict[str, Any] | None) -> bool:
        import psutil

        if not state or not state.get("sshd_pid"):
            return False
        try:
            process = psutil.Process(state["sshd_pid"])
            return process.is_running() and str(self.ssh_dir / "sshd_config") in process.cmdline()
        except psutil.Error:
            return False

    def up(self) -> dict[str, Any]:
        """Make and start the board (or refresh edge_ai_lib on one already up); returns its config entry."""
        if os.geteuid() != 0:
            raise BoardError("the emulated board needs root (mounts, chroot, sshd): run it as root")
        for tool, package in (("/usr/sbin/sshd", "openssh-server"), ("ssh-keygen", "openssh-client"),
                              ("zstd", "zstd"), ("chroot", "coreutils")):
            if shutil.which(tool) is None:
                raise BoardError(f"the emulated board needs {tool}: apt-get install {package}")
        started = time.monotonic()
        state = self.read_state()
        if self._sshd_alive(state):
            self.log(f"board '{self.name}' is up already (sshd pid {state['sshd_pid']}, port {state['port']})")
            self.install_library()
            return self.board_entry(state["port"])
        if state:
            self.down()  # the remains of a board that was not brought down (a reboot, a killed sshd)
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._check_directory()
        ensure_binfmt()
        how = self.prepare_rootfs()
        self.timings["rootfs"] = how
        installed = self.install_library()
        try:
            self.mount()
            pid, port = self._start_sshd()
            self.state_file.write_text(json.dumps({"sshd_pid": pid, "port": port, "rootfs": str(self.rootfs),
                                                   "qemu_cpu": self.qemu_cpu, "started": time.time()}))
            (self.ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {self.host_public_key()}\n")
            machine = _run([*self.ssh_command(port), "uname", "-m"], "logging in to the board", timeout=120)
        except BaseException:
            self.down()
            raise
        if machine.stdout.strip() != MACHINE:
            self.down()
            raise BoardError(f"the board answered `uname -m` with {machine.stdout.strip()!r}, not {MACHINE}: is "
                             "qemu-aarch64 registered with binfmt_misc?")
        self.timings["up_s"] = time.monotonic() - started
        self.log(f"board '{self.name}' up in {self.timings['up_s']:.1f} s (rootfs {how}, edge_ai_lib {installed}); "
                 f"sshd pid {pid} on 127.0.0.1:{port}")
        return self.board_entry(port)

    def down(self) -> dict[str, Any]:
        """Stop sshd and every process in the rootfs (by PID), unmount; what was stopped and unmounted."""
        import psutil

        state = self.read_state() or {}
        stopped = []
        if self._sshd_alive(state):
            sshd = psutil.Process(state["sshd_pid"])
            family = [sshd.pid, *(child.pid for child in sshd.children(recursive=True))]
            _stop_pids(family)
            stopped += family
        rooted = _processes_rooted_in(self.rootfs)
        if rooted:
            _stop_pids(rooted)
            stopped += rooted
        unmounted = self.unmount() if self.rootfs.exists() else []
        port = state.get("port")
        if port:
            deadline = time.monotonic() + 10
            while _port_listening(port) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _port_listening(port):
                raise BoardError(f"port {port} still listens after the board's sshd stopped: see `ss -ltnp "
                                 f"sport = :{port}`")
        self.state_file.unlink(missing_ok=True)
        return {"stopped_pids": sorted(set(stopped)), "unmounted": unmounted}

    def remove(self) -> None:
        """Delete the board's directory (rootfs, keys); the cached tarball stays."""
        self.down()
        if self.directory.exists():
            if _mount_points_under(self.directory):
                raise BoardError(f"{self.directory} still has mounts: {_mount_points_under(self.directory)}")
            shutil.rmtree(self.directory)

    def status(self) -> dict[str, Any]:
        state = self.read_state()
        tarball = self.tarball()
        return {"name": self.name, "up": self._sshd_alive(state), "port": (state or {}).get("port"),
                "sshd_pid": (state or {}).get("sshd_pid"), "directory": str(self.directory),
                "rootfs": self.rootfs.is_dir(), "mounts": _mount_points_under(self.rootfs) if self.rootfs.exists() else [],
                "processes_in_rootfs": _processes_rooted_in(self.rootfs),
                "cached_rootfs": str(tarball) if tarball.is_file() else None,
                "cached_rootfs_bytes": tarball.stat().st_size if tarball.is_file() else None}

    def board_entry(self, port: int) -> dict[str, Any]:
        """The board's entry for a config's `boards:`: an SSHBoard of architecture aarch64, prepared here."""
        return {f"emulated-{self.name}": {
            "class": "edge_ai_lib.boards.ssh.SSHBoard",
            "architecture": MACHINE,
            "args": {"ssh_host": "127.0.0.1", "ssh_port": port, "user": getpass.getuser(),
                     "key_filename": str(self.ssh_dir / "client_ed25519"),
                     "known_hosts": str(self.ssh_dir / "known_hosts"), "python": f"{VENV}/bin/python",
                     "workdir": BOARD_WORKDIR, "no_install": True, "emulated": True, "startup_timeout": 300.0},
            "runtime_args": {"num_threads": 1}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_ai_lib.boards.emulated", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "status", "remove"),
                        help="up: make and start the board, print its config entry; down: stop it and unmount; "
                             "status: what runs and what is cached; remove: down, then delete its directory")
    parser.add_argument("--name", default=DEFAULT_NAME, help="The board's name (default: %(default)s)")
    parser.add_argument("--directory", type=Path, help=f"The board's directory (default: {BOARDS_ROOT}/NAME)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="sshd's port on 127.0.0.1 (default: %(default)s; 0: a free one)")
    parser.add_argument("--cache", type=Path, help="Cache directory (default: $EDGE_AI_CACHE_DIR, else "
                        "~/.cache/edge-ai-tester)")
    parser.add_argument("--qemu-cpu", default=QEMU_CPU, help="The CPU qemu emulates (default: %(default)s)")
    args = parser.parse_args(argv)
    board = EmulatedBoardProvisioner(args.name, args.directory, args.port, args.cache, qemu_cpu=args.qemu_cpu,
                                     log=lambda text: print(text, file=sys.stderr))
    try:
        if args.action == "up":
            import yaml

            entry = board.up()
            print(yaml.safe_dump({"boards": entry}, sort_keys=False), end="")
        elif args.action == "down":
            result = board.down()
            print(f"board '{args.name}': stopped {len(result['stopped_pids'])} processes "
                  f"({' '.join(map(str, result['stopped_pids'])) or 'none'}), unmounted "
                  f"{', '.join(result['unmounted']) or 'nothing'}")
        elif args.action == "remove":
            board.remove()
            print(f"board '{args.name}': removed {board.directory}")
        else:
            print(json.dumps(board.status(), indent=2))
    except (BoardError, ConfigurationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
