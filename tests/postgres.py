"""A real PostgreSQL server for the tests: made with the machine's initdb, run as a user that is
not root, stopped, restarted and re-configured by the fault tests.

``Server`` is one cluster in a temporary folder: a TCP port on 127.0.0.1 (password logins,
scram-sha-256) and a unix socket in the folder (the superuser ``postgres``, trusted). The
binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, ``apt-get install postgresql``),
else those on the PATH. Run as root, the server runs as the package's ``postgres`` user.

The fixtures: ``postgres_server``, one server per test session (per xdist worker), made by
copying a cluster that initdb made once; ``database``, a fresh database on it for one test,
with pixstor-azure's tables made by ``db init`` as their owner and a role for the nodes with
only the grants the README gives; ``own_server``, a server of the test's own, to stop, restart
and re-configure. Without binaries the tests that need them skip, except under CI=true, where
they fail: CI has installed them, so missing binaries are a broken CI.
"""

import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from pixstor_azure.tool import db as dbtool

SUPERUSER = "postgres"
OWNER = "pixstor_owner"  # makes the tables (`db init`)
NODE = "pixstor_node"  # what the nodes log in as: the grants `db init --grant` gives
NODE_PASSWORD = "node-pw-8c1d4e7f2a"
OWNER_PASSWORD = "owner-pw-3b9e6a1c5d"
_names = itertools.count(1)


def binaries() -> Optional[Path]:
    """The folder holding initdb, pg_ctl and postgres (the newest version), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def need_binaries() -> Path:
    """The binaries' folder; skips the test without them, fails it under CI."""
    found = binaries()
    if found is None:
        why = (
            "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql, or "
            "put them on the PATH"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the database tests: {why}")
        pytest.skip(why)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One PostgreSQL cluster in ``folder``: data in ``folder/data``, its socket in ``folder``."""

    def __init__(self, bin_folder: Path, folder: Path) -> None:
        self.bin = bin_folder
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.log = folder / "server.log"
        self.running = False

    # ------------------------------------------------------------------ as its own user

    def _owner(self):
        """Run as root, the server must be another user: the package's postgres user."""
        if os.geteuid() != 0:
            return None
        entry = pwd.getpwnam("postgres")

        def demote() -> None:
            os.setgid(entry.pw_gid)
            os.initgroups("postgres", entry.pw_gid)
            os.setuid(entry.pw_uid)

        return entry, demote

    def _chown(self, path: Path) -> None:
        owner = self._owner()
        if owner is None:
            return
        entry = owner[0]
        for root, folders, files in os.walk(str(path)):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in folders + files:
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        owner = self._owner()
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
            preexec_fn=owner[1] if owner else None,
            cwd=str(self.folder),
            check=check,
            timeout=120,
        )

    # ------------------------------------------------------------------ life

    def initdb(self) -> "Server":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._chown(self.folder)
        os.chmod(str(self.folder), 0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        with open(str(self.data / "postgresql.conf"), "a") as conf:
            conf.write(
                # fsync off: what was written survives a crash of the server (the system keeps
                # it), which is all the fault tests crash.
                "\n# tests\nfsync = off\nfull_page_writes = off\n"
                "shared_buffers = 32MB\nmax_connections = 60\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.folder}'\n"
            )
        return self

    def copy_to(self, folder: Path) -> "Server":
        """A new server with a copy of this one's data (stopped), on a port of its own."""
        other = Server(self.bin, folder)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(str(self.data), str(other.data), symlinks=True)
        conf = other.data / "postgresql.conf"
        conf.write_text(
            conf.read_text().replace(
                f"unix_socket_directories = '{self.folder}'",
                f"unix_socket_directories = '{folder}'",
            )
        )
        auto = other.data / "postgresql.auto.conf"
        auto.write_text("# tests\n")
        for pid_file in other.data.glob("postmaster.pid"):
            pid_file.unlink()
        other._chown(folder)
        os.chmod(str(folder), 0o700)
        return other

    def start(self) -> "Server":
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port}",
            "start",
        )
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if not self.running:
            return
        self.thaw()
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        if self.running:
            self.stop("immediate")
        shutil.rmtree(str(self.folder), ignore_errors=True)

    def configure(self, **settings: str) -> None:
        """ALTER SYSTEM each setting and reload: every session takes it at its next statement."""
        with self.admin() as link:
            for name, value in settings.items():
                link.execute(f"ALTER SYSTEM SET {name} = %s", (value,))
            link.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)  # the postmaster signals its children; each reads the file

    def reset_configuration(self) -> None:
        with self.admin() as link:
            link.execute("ALTER SYSTEM RESET ALL")
            link.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)

    # ------------------------------------------------------------------ frozen: slow

    def pids(self) -> List[int]:
        """The postmaster and every process it started."""
        first = self.data / "postmaster.pid"
        postmaster = int(first.read_text().split()[0])
        found = [postmaster]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                found.append(int(stat.split("/")[2]))
        return found

    def freeze(self) -> None:
        """Stop every process of the server (SIGSTOP): connections stay open, nothing answers."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if getattr(self, "frozen", False):
            for pid in self.pids():
                os.kill(pid, signal.SIGCONT)
            self.frozen = False

    # ------------------------------------------------------------------ clients

    def url(self, user: str = NODE, password: Optional[str] = NODE_PASSWORD, db: str = "") -> str:
        """A URL over TCP with a password, as a node would be set up."""
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{db or 'postgres'}"

    def socket_url(self, user: str = SUPERUSER, db: str = "postgres") -> str:
        return f"postgresql://{user}@/{db}?host={self.folder}&port={self.port}"

    def admin(self, db: str = "postgres"):
        """A superuser connection (autocommit) over the unix socket."""
        import psycopg2

        link = psycopg2.connect(host=str(self.folder), port=self.port, user=SUPERUSER, dbname=db)
        link.autocommit = True
        return _Closing(link)

    def sql(self, statement: str, params=None, db: str = "postgres") -> list:
        with self.admin(db) as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description is not None else []

    def make_roles(self) -> None:
        """The owner of the tables and the nodes' role, as the README sets them up."""
        for role, password in ((OWNER, OWNER_PASSWORD), (NODE, NODE_PASSWORD)):
            if not self.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
                self.sql(f"CREATE ROLE {role} LOGIN PASSWORD %s", (password,))

    def new_database(self) -> str:
        """A new empty database owned by the tables' owner; its name."""
        name = f"t{os.getpid()}_{next(_names)}"
        self.make_roles()
        self.sql(f"CREATE DATABASE {name} OWNER {OWNER}")
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class _Closing:
    """A connection's cursor in a ``with``, the connection closed after."""

    def __init__(self, link) -> None:
        self.link = link

    def __enter__(self):
        self.cursor = self.link.cursor()
        return self.cursor

    def __exit__(self, *exc_info) -> None:
        self.cursor.close()
        self.link.close()


class Clusters:
    """The session's template cluster (initdb once) and the servers copied from it."""

    def __init__(self, bin_folder: Path) -> None:
        self.bin = bin_folder
        self.root = Path(tempfile.mkdtemp(prefix="pixstor-azure-pg-"))
        os.chmod(str(self.root), 0o755)  # the server's user enters to reach its own folder
        self.template = Server(bin_folder, self.root / "template").initdb()
        self.servers = []  # type: List[Server]

    def new(self) -> Server:
        server = self.template.copy_to(self.root / f"s{len(self.servers) + 1}")
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.remove()
        shutil.rmtree(str(self.root), ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_clusters():
    clusters = Clusters(need_binaries())
    yield clusters
    clusters.close()


@pytest.fixture(scope="session")
def postgres_server(postgres_clusters):
    """One running server for the session's tests that do not stop it."""
    server = postgres_clusters.new().start()
    server.make_roles()
    yield server
    server.stop("immediate")


@pytest.fixture
def own_server(postgres_clusters):
    """A running server of the test's own, to stop, restart and re-configure."""
    server = postgres_clusters.new().start()
    server.make_roles()
    yield server
    server.remove()


def init_database(server: Server, db: str) -> Dict[str, str]:
    """``db init --grant`` as the tables' owner; the URLs of the owner and of a node."""
    owner = server.url(OWNER, OWNER_PASSWORD, db)
    dbtool.init(owner, grant=NODE)
    return {"owner": owner, "node": server.url(NODE, NODE_PASSWORD, db)}


@pytest.fixture
def database(postgres_server):
    """A fresh database with pixstor-azure's tables: the URLs of their owner and of a node."""
    name = postgres_server.new_database()
    urls = init_database(postgres_server, name)
    yield urls
    postgres_server.drop_database(name)
