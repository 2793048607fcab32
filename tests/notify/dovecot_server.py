"""A real IMAP server for the mailbox tests: a private Dovecot started here (its own config, a
passwd-file user and a maildir in a temporary folder, nothing of the machine's changed),
messages delivered to it by IMAP APPEND, and :func:`mail` to build them. Its fixture,
``dovecot``, is in tests/notify/conftest.py; tests/api/test_inbound_email.py starts one
under the running service.

Without Dovecot installed (``apt-get install dovecot-imapd``) a test that needs it skips
saying so, except in CI (LASTMILE_REQUIRE_SERVERS=1), where it fails.
"""

from __future__ import annotations

import grp
import imaplib
import ipaddress
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from notify.inbox_imap import ImapConfig
from tests.conftest import require_servers

USER = "support"
PASSWORD = "imap-password-0123456789"
#: How long Dovecot has to start answering.
START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), for Dovecot's TLS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lastmile test IMAP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


class Dovecot:
    """A private Dovecot in the foreground (``dovecot -F``) on free loopback ports: plain
    IMAP with STARTTLS on ``port``, implicit TLS on ``tls_port``, one passwd-file user.

    As root, Dovecot will not run its login processes or a mailbox as root: they run as the
    users Debian's package made (dovecot, dovenull) and the mailbox as ``nobody``. As anyone
    else, everything runs as that user."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        # Not pytest's tmp_path: its parents are private to the user, and Dovecot's own
        # users (when started as root) must reach the passwd file and the maildir.
        self.root = Path(tempfile.mkdtemp(prefix="lastmile-dovecot-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port()
        self.cert, key = _self_signed(self.root)
        self.client_tls = ssl.create_default_context(cafile=str(self.cert))
        mail = self.root / "mail"
        mail.mkdir()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
            os.chown(mail, uid, gid)
            users = ""  # the package's dovecot and dovenull
            chroot = ""
        else:
            uid, gid = os.getuid(), os.getgid()
            me, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
            users = (
                f"default_internal_user = {me}\ndefault_internal_group = {group}\n"
                f"default_login_user = {me}\n"
            )
            chroot = "  chroot =\n"
        (self.root / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{mail}/{USER}\n"
        )
        self.log = self.root / "dovecot.log"
        self.config = self.root / "dovecot.conf"
        self.config.write_text(
            f"""base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
{users}first_valid_uid = {uid}
last_valid_uid = {uid}
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.root}/passwd
}}
mail_location = maildir:{mail}/%u
service imap-login {{
{chroot}  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
{chroot}}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
"""
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config), "-F"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start: {self._why()}")
            try:
                imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=2)
            except OSError:
                time.sleep(0.1)
                continue
            imap.logout()
            return
        raise RuntimeError(f"dovecot not answering after {START_TIMEOUT_S} s: {self._why()}")

    def _why(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        if self.process is not None and self.process.stderr is not None and self.process.poll():
            text += self.process.stderr.read().decode(errors="replace")
        return text[-2000:]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def imap_config(self, tls: str = "none") -> ImapConfig:
        port = self.tls_port if tls == "ssl" else self.port
        return ImapConfig(host="127.0.0.1", username=USER, port=port, tls=tls)  # type: ignore[arg-type]

    def _login(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(USER, PASSWORD)
        return imap

    def deliver(self, message: EmailMessage | bytes, *, seen: bool = False) -> None:
        """Put a message in the inbox (IMAP APPEND), unseen unless ``seen``."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        imap = self._login()
        try:
            status, data = imap.append("INBOX", "(\\Seen)" if seen else None, None, raw)
            assert status == "OK", data
        finally:
            imap.logout()

    def mark_unseen(self) -> None:
        """Every message of the inbox unseen again (as after a crash before marking it)."""
        imap = self._login()
        try:
            imap.select("INBOX")
            status, data = imap.store("1:*", "-FLAGS.SILENT", "(\\Seen)")
            assert status == "OK", data
        finally:
            imap.logout()

    def seen(self) -> dict[str, bool]:
        """Whether each message of the inbox (by its Message-ID, brackets off) is seen."""
        imap = self._login()
        try:
            imap.select("INBOX", readonly=True)
            status, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            assert status == "OK", data
        finally:
            imap.logout()
        found: dict[str, bool] = {}
        for item in data:
            if isinstance(item, tuple):
                head, header = item
                message_id = header.decode().split(":", 1)[1].strip().strip("<>")
                found[message_id] = b"\\Seen" in head
        return found


def dovecot_or_skip() -> str:
    """Dovecot's binary, or skip (fail in CI) saying it is not installed."""
    # Debian's package puts it in sbin, which is not on an ordinary user's PATH.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    binary = shutil.which("dovecot", path=search)
    if binary is None:
        message = "dovecot is not installed (apt-get install dovecot-imapd)"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    return binary


def mail(
    sender: str,
    subject: str,
    text: str,
    *,
    html: str | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A message as a customer's mail client would send it (plain text, and an HTML
    alternative when ``html`` is given)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@acme.example"
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="mail.example")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message
