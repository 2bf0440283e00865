"""A certificate authority per project, for intercepted HTTPS: its certificate goes into the
container at the platform's path; emu signs a certificate for each name a client asks for
(SNI) and terminates TLS with it."""

from __future__ import annotations

import datetime
import hashlib
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CONTAINER_PATH = "/etc/cloudflare/certs/cloudflare-containers-ca.crt"
VALID = datetime.timedelta(days=825)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


class Authority:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cert_path = folder / "ca.crt"
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}
        folder.mkdir(parents=True, exist_ok=True)
        key_path = folder / "ca.key"
        if key_path.is_file() and self.cert_path.is_file():
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            self._key = key
            self._cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            return
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = _name(f"emu local CA {folder.name}")
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        key_path.write_bytes(_pem_key(self._key))
        key_path.chmod(0o600)
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def _leaf(self, host: str) -> Path:
        """A certificate for `host`, signed by this CA (made once, kept in the folder)."""
        digest = hashlib.sha256(host.encode()).hexdigest()[:24]
        path = self.folder / "hosts" / f"{digest}.pem"
        if path.is_file():
            return path
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(host[:64]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        path.parent.mkdir(exist_ok=True)
        pem = cert.public_bytes(serialization.Encoding.PEM) + _pem_key(key)
        path.write_bytes(pem)
        path.chmod(0o600)
        return path

    def context_for(self, host: str) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(host)
            if context is None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(self._leaf(host))
                self._contexts[host] = context
            return context

    def server_context(self) -> ssl.SSLContext:
        """Answers each client with a certificate for the name it asked for."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._leaf("localhost"))

        def pick(sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            if name:
                sock.context = self.context_for(name.lower())

        context.sni_callback = pick
        return context
