"""A self-signed certificate for trials on a LAN.

Browsers open the camera and microphone only on https (or localhost); a
classroom PC that reaches the server by its LAN address needs https. For a
trial, ``synclass serve --tls-self-signed`` makes a certificate once (kept in
the data directory) valid for localhost and every address of this machine;
each browser must accept it once.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def local_addresses() -> list[str]:
    import ifaddr

    found = ["127.0.0.1"]
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and ip.ip not in found:
                found.append(ip.ip)
    return found


def ensure_self_signed(directory: Path, hostnames: list[str] | None = None) -> tuple[Path, Path]:
    """Return (cert, key) paths in ``directory``, creating them if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "self-signed.crt"
    key_path = directory / "self-signed.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    names = ["localhost", socket.gethostname()] + (hostnames or [])
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(names)]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in local_addresses()]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "synclass trial")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
