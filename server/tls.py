"""HTTPS for phones on the LAN: getUserMedia needs a secure context, so `--https` serves TLS.

Without certificate files, a self-signed certificate is created once (valid for localhost, this host's
name and its addresses) and reused on every later start, so that a phone accepts the warning once, not
at every restart. It is re-issued, with the same key, shortly before it expires or when the host's name
or addresses change.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_VALID_DAYS = 825
RENEW_BEFORE_DAYS = 30
"""The server's own certificate is re-issued when it has fewer days left than this."""
_SUBJECT_PREFIX = "maskcam "


def ensure_self_signed(cert_path: Path, key_path: Path, addresses: list[str]) -> str | None:
    """Create a self-signed pair at the paths unless both exist; renew this server's own certificate.

    A certificate made here is re-issued with the same key (so a kiosk that pins the key's SPKI hash keeps
    working) when it expires within `RENEW_BEFORE_DAYS` or no longer names this host or one of
    `addresses`. An operator's own certificate (any other subject) is never touched. Returns what was
    done, for the start-up message, or None.
    """
    if cert_path.is_file() and key_path.is_file():
        reason = _renewal_reason(cert_path, addresses)
        if reason is None:
            return None
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            return None
        _write_certificate(cert_path, key, addresses)
        return f"renewed the self-signed certificate {cert_path} with the same key ({reason})"
    if cert_path.exists() != key_path.exists():
        raise FileExistsError(f"only one of {cert_path} and {key_path} exists: remove it or give both")
    key = ec.generate_private_key(ec.SECP256R1())
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(key_bytes)
    _write_certificate(cert_path, key, addresses)
    return f"created a self-signed certificate {cert_path} (reused from now on)"


def _renewal_reason(cert_path: Path, addresses: list[str]) -> str | None:
    """Why this server's own certificate must be re-issued, or None (also for an operator's certificate)."""
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    own = certificate.issuer == certificate.subject and any(
        str(name.value).startswith(_SUBJECT_PREFIX) for name in names
    )
    if not own:
        return None
    expires = certificate.not_valid_after_utc
    if expires - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=RENEW_BEFORE_DAYS):
        return f"it expires on {expires:%Y-%m-%d}"
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "it names no host"
    known = {str(ip) for ip in alternative.get_values_for_type(x509.IPAddress)}
    missing = sorted(set(addresses) - known)
    if missing:
        return f"new address {', '.join(missing)}"
    if socket.gethostname() not in alternative.get_values_for_type(x509.DNSName):
        return f"new host name {socket.gethostname()}"
    return None


def _write_certificate(cert_path: Path, key: ec.EllipticCurvePrivateKey, addresses: list[str]) -> None:
    """A certificate for localhost, this host's name and `addresses`, valid `CERT_VALID_DAYS` days."""
    hostname = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(hostname)]
    for address in sorted({"127.0.0.1", *addresses}):
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{_SUBJECT_PREFIX}{hostname}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
