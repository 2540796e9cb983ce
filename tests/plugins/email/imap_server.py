"""A real IMAP server for the tests: Debian's dovecot (dovecot-imapd, installed by
.ci/run), started on a loopback port with a throw-away configuration in a temporary
folder: plaintext login on 127.0.0.1, one passwd-file user, maildir storage."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "inbox@acme.test", "imap-secret-pw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    def __init__(self, root: Path) -> None:
        """``root``: a folder whose parents others may enter (not pytest's tmp_path,
        which is private to its user): tempfile.mkdtemp() in /tmp."""
        self.root = root
        self.port = _free_port()
        if os.getuid() == 0:
            # dovecot will not run mail processes as root: the mail belongs to its own user
            account = pwd.getpwnam("dovecot")
            uid, gid, internal = account.pw_uid, account.pw_gid, "dovecot"
        else:
            uid, gid, internal = os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name
        root.chmod(0o755)  # the auth process (dovecot's user) reads the passwd file here
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        os.chown(root / "mail", uid, gid) if os.getuid() == 0 else None
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{root / 'mail'}/%u\n")
        (root / "dovecot.conf").write_text(f"""
base_dir = {root / 'run'}
state_dir = {root / 'state'}
log_path = {root / 'dovecot.log'}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {min(uid, 100)}
default_internal_user = {internal}
default_login_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
mail_location = maildir:{root / 'mail'}/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root / 'passwd'}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root / 'mail'}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(100).startswith(b"* OK"):
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        out = path.read_text(errors="replace")[-3000:] if path.exists() else ""
        if self.process.poll() is not None and self.process.stdout:
            out += self.process.stdout.read().decode(errors="replace")[-3000:]
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
