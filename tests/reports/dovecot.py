"""A real Dovecot IMAP server on loopback for the IMAP route (`mtasts reports fetch-imap`).

``Dovecot(root, leaf)`` writes a configuration with everything under ``root`` (runtime
sockets, state, log, the passwd-file and the user's Maildir) and runs ``dovecot -F`` in the
foreground with IMAP + STARTTLS on ``.imap_port`` and IMAPS on ``.imaps_port`` (127.0.0.1,
free ports), the certificate ``leaf`` (from the test CA) and one user ``USER``/``PASSWORD``.

Dovecot never gives mail access to uid 0, and its mail processes run as the mail user: as
root the mailbox belongs to the system user ``mail`` and ``root`` is made world-traversable
(pytest's own temporary directories are private to root, so ``root`` is a fresh directory
under the system temp directory). Run as another user, Dovecot runs wholly as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from imapclient import IMAPClient  # type: ignore[import-untyped]

from tests.lab.ca import Leaf
from tests.lab.ports import free_port
from tests.lab.require import require

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
IMAP_BINARY = "/usr/lib/dovecot/imap"  # the mail process (package dovecot-imapd)
USER = "reports"
PASSWORD = "s3cret-imap-pw"


def require_dovecot() -> None:
    """Skip (fail with CI=true) when Dovecot is not installed."""
    require(
        os.access(DOVECOT, os.X_OK) and os.access(IMAP_BINARY, os.X_OK),
        f"Dovecot with IMAP ({DOVECOT}, {IMAP_BINARY}: Debian packages dovecot-core and "
        "dovecot-imapd; scripts/system-deps.sh installs them)",
    )


class Dovecot:
    """One Dovecot instance; use as a context manager (started on enter, stopped on exit)."""

    def __init__(
        self,
        root: Path,
        leaf: Leaf,
        ca_file: str,
        *,
        capabilities: str | None = None,
    ) -> None:
        """``capabilities``: replace the post-login CAPABILITY list (Dovecot's
        ``imap_capability``), e.g. to hide MOVE or UIDPLUS from clients."""
        self.root = root
        self.leaf = leaf
        self.ca_file = ca_file
        self.capabilities = capabilities
        self.host = "127.0.0.1"
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.log = root / "dovecot.log"
        self.process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            mail = pwd.getpwnam("mail")
            self.uid, self.gid = mail.pw_uid, mail.pw_gid
            self.internal_user, self.login_user = "dovecot", "dovenull"
        else:
            me = pwd.getpwuid(os.geteuid())
            self.uid, self.gid = me.pw_uid, me.pw_gid
            self.internal_user = self.login_user = me.pw_name
        self.home = root / "home" / USER

    # --- set-up ---------------------------------------------------------------------------

    def _write_config(self) -> Path:
        root = self.root
        for sub in ("run", "state", "ssl"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        # Dovecot reads the key as root (or the only user); keep it private anyway.
        cert, key = root / "ssl" / "chain.pem", root / "ssl" / "key.pem"
        cert.write_bytes(self.leaf.chain_pem)
        key.write_bytes(self.leaf.key_pem)
        key.chmod(0o600)
        passwd = root / "passwd"
        passwd.write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{self.home}::\n", encoding="utf-8"
        )
        passwd.chmod(0o644)  # the auth worker runs as the internal user; a test password
        for sub in ("cur", "new", "tmp"):
            (self.home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
        for path in [self.home.parent, self.home, *self.home.rglob("*")]:
            os.chown(path, self.uid, self.gid)
        chroot = "" if os.geteuid() != 0 else "login"
        capability = f"imap_capability = {self.capabilities}\n" if self.capabilities else ""
        conf = root / "dovecot.conf"
        conf.write_text(
            f"""# written by tests/reports/dovecot.py
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log}
info_log_path = {self.log}
protocols = imap
listen = {self.host}
default_internal_user = {self.internal_user}
default_login_user = {self.login_user}
first_valid_uid = {self.uid}
last_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_location = maildir:~/Maildir
mail_privileged_group =
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
{capability}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
namespace inbox {{
  inbox = yes
}}
service imap-login {{
  chroot = {chroot}
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
# the mail processes run as the mail user: let them report to the stats service
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""",
            encoding="utf-8",
        )
        return conf

    def start(self) -> None:
        conf = self._write_config()
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120  # generous: a loaded machine
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read() if self.process.stdout else b""
                raise RuntimeError(
                    f"dovecot exited with {self.process.returncode}: "
                    f"{out.decode(errors='replace')}\n{self.log_text()}"
                )
            if all(_accepts(self.host, p) for p in (self.imap_port, self.imaps_port)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen within 120 s\n{self.log_text()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests do with it ----------------------------------------------------------

    @contextmanager
    def client(self) -> Iterator[IMAPClient]:
        """A logged-in IMAPS client trusting the test CA (for setting up and checking)."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        c = IMAPClient(self.host, port=self.imaps_port, ssl=True, ssl_context=ctx, timeout=30)
        try:
            c.login(USER, PASSWORD)
            yield c
        finally:
            try:
                c.logout()
            except Exception:
                c.shutdown()

    def append(self, messages: Iterable[bytes], folder: str = "INBOX") -> None:
        """Deliver ``messages`` into ``folder`` (IMAP APPEND, unseen)."""
        with self.client() as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for m in messages:
                c.append(folder, m, flags=())

    def messages(self, folder: str) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """(body, flags) of every message in ``folder`` (empty when it does not exist)."""
        with self.client() as c:
            if not c.folder_exists(folder):
                return []
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            data = c.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
            return [(data[u][b"BODY[]"], tuple(data[u][b"FLAGS"])) for u in sorted(data)]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def dovecot_server(
    leaf: Leaf, ca_file: str, *, capabilities: str | None = None
) -> Iterator[Dovecot]:
    """Dovecot in a fresh directory (removed afterwards) that its mail user can reach."""
    require_dovecot()
    root = Path(tempfile.mkdtemp(prefix="mtasts-dovecot-"))
    root.chmod(0o755)
    try:
        with Dovecot(root, leaf, ca_file, capabilities=capabilities) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def leaf_names() -> list[str]:
    """The names the server certificate carries (clients connect to 127.0.0.1)."""
    return ["127.0.0.1", "localhost"]
