"""A throwaway single-node Slurm cluster for the tests marked ``slurm``.

:class:`SlurmCluster` installs Debian's Slurm packages when they are missing
(``apt-get``; the machines run as root), writes its own munge key,
``slurm.conf``, state, spool and log folders in a new temporary folder, starts
``munged``, ``slurmctld`` and ``slurmd`` in the foreground as its own children,
waits until ``sinfo`` shows the node idle, and on :meth:`~SlurmCluster.stop`
ends those three processes by their PIDs and removes the folder. Nothing under
``/etc`` is used: the daemons and every client (``sbatch``, ``squeue``, ``srun``
inside jobs) read the cluster's ``slurm.conf`` through ``SLURM_CONF``, which
:attr:`~SlurmCluster.env` holds, and its ports are free ports picked at start, so
two clusters (two test sessions) on one machine do not meet.

The node has the machine's cores and no accounting database (``sacct`` has no
records); process tracking is plain ``/proc`` (``proctrack/linuxproc``,
``task/none``), which needs no cgroups in a container.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Debian packages of the daemons and the client commands (Slurm 22.05 on Debian 12).
PACKAGES = ("slurmctld", "slurmd", "munge", "slurm-client")
#: The programs the cluster needs, each from one of :data:`PACKAGES`.
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue")
#: How long the daemons get to bring the node up (seconds).
START_TIMEOUT_S = 60.0
PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """Slurm is not installed and cannot be installed here (not root, no package index)."""


def install_packages() -> None:
    """``apt-get install`` the Slurm packages if a program is missing.

    Raises:
        SlurmUnavailable: when a program is missing and this is not root, or the install fails.
    """
    if all(shutil.which(p) or Path("/usr/sbin", p).exists() for p in PROGRAMS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable(
            f"Slurm is not installed and this is not a root Debian machine: apt-get install "
            f"{' '.join(PACKAGES)}"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    """One controller and one node on this machine, in a temporary folder.

    Use as a context manager, or :meth:`start` and :meth:`stop`.
    """

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.processes: dict[str, subprocess.Popen] = {}
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1

    @property
    def conf(self) -> Path:
        assert self.folder is not None, "the cluster is not started"
        return self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a client command needs in its environment to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self, folder: Path) -> None:
        for name in ("state", "spool", "log", "munge"):
            (folder / name).mkdir(mode=0o700)
        key = folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        ctld_port, node_port = _free_port(), _free_port()
        lines = {
            "ClusterName": f"dfbench{ctld_port}",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            "SlurmctldPort": ctld_port,
            "SlurmdPort": node_port,
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={folder / 'munge' / 'munge.socket'}",
            "StateSaveLocation": folder / "state",
            "SlurmdSpoolDir": folder / "spool",
            "SlurmctldPidFile": folder / "slurmctld.pid",
            "SlurmdPidFile": folder / "slurmd.pid",
            "SlurmctldLogFile": folder / "log" / "slurmctld.log",
            "SlurmdLogFile": folder / "log" / "slurmd.log",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "SchedulerType": "sched/backfill",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "JobCompType": "jobcomp/none",
            "MpiDefault": "none",
            "ReturnToService": 2,
            "PlugStackConfig": "/dev/null",
            # Quick turnover: a finished job's record stays long enough for squeue.
            "MinJobAge": 300,
            "SchedulerParameters": "sched_interval=2",
            "KillWait": 5,
        }
        text = "".join(f"{key}={value}\n" for key, value in lines.items())
        text += f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN\n"
        text += (
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
        )
        (folder / "slurm.conf").write_text(text)

    def _daemon(self, name: str, args: list[str]) -> None:
        assert self.folder is not None
        log = open(self.folder / "log" / f"{name}.out", "wb")  # noqa: SIM115 (kept open)
        self.processes[name] = subprocess.Popen(
            [_program(name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | self.env,
            start_new_session=True,
        )

    def start(self) -> SlurmCluster:
        """Install if needed, write the configuration, start the daemons, wait for the node.

        Raises:
            SlurmUnavailable: see :func:`install_packages`.
            RuntimeError: a daemon died or the node was not idle in time (with its log's tail).
        """
        install_packages()
        self.folder = Path(tempfile.mkdtemp(prefix="slurm-"))
        self.folder.chmod(0o755)
        try:
            self._write_config(self.folder)
            munge = self.folder / "munge"
            self._daemon(
                "munged",
                [
                    "--foreground",
                    "--force",
                    f"--socket={munge / 'munge.socket'}",
                    f"--key-file={munge / 'munge.key'}",
                    f"--pid-file={munge / 'munged.pid'}",
                    f"--log-file={self.folder / 'log' / 'munged.log'}",
                    f"--seed-file={munge / 'munged.seed'}",
                ],
            )
            self._wait(lambda: (munge / "munge.socket").exists(), "munged's socket")
            self._daemon("slurmctld", ["-D", "-i", "-f", str(self.conf)])
            self._daemon("slurmd", ["-D", "-f", str(self.conf), "-N", self.node])
            self._wait(self._node_idle, f"node {self.node} idle in sinfo")
        except BaseException:
            self.stop()
            raise
        return self

    def _node_idle(self) -> bool:
        shown = self.run(["sinfo", "--noheader", "--Node", "--format=%T"], check=False)
        return shown.returncode == 0 and shown.stdout.strip() == "idle"

    def _wait(self, ready, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = (
                    f"{', '.join(dead)} exited" if dead else f"no {what} after {START_TIMEOUT_S} s"
                )
                raise RuntimeError(f"the test Slurm cluster did not start: {why}\n{self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        """The tail of every daemon's log (for a failure message)."""
        if self.folder is None:
            return ""
        parts = []
        for path in sorted((self.folder / "log").glob("*")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    def run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
        """A client command against this cluster (``sinfo``, ``squeue``, ``scontrol`` ...)."""
        done = subprocess.run(command, env=os.environ | self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
        return done

    def wait_for_jobs(self, timeout_s: float) -> None:
        """Wait until no job is queued or running; raise with the logs after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.run(["squeue", "--noheader", "--format=%i"]).stdout.strip():
            if time.monotonic() > deadline:
                queue = self.run(["squeue", "--format=%i %j %T %r"]).stdout
                raise TimeoutError(f"jobs still queued after {timeout_s} s:\n{queue}{self.logs()}")
            time.sleep(1.0)

    def stop(self) -> None:
        """End the daemons by PID (SIGTERM, then SIGKILL) and remove the folder."""
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running throwaway cluster for the session's ``slurm`` tests.

    Where Slurm cannot be installed the tests fail (they are asked for by name,
    ``make test-slurm``): a skip would pass silently.
    """
    cluster = SlurmCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
