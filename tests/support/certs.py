"""Certificates made in the tests with ``cryptography``: a CA, leaves with DNS,
IP and SPIFFE URI SANs, expired ones, and PEM files to point configs at.

    ca = CertificateAuthority("mesh root")
    server = ca.issue(dns=["shop.internal"], uris=["spiffe://cluster.local/ns/default/sa/shop"])
    server.write(tmp_path, "server")   # server.pem, server.key
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOUR = datetime.timedelta(hours=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def cert_pem(self) -> bytes:
        pems = [c.public_bytes(serialization.Encoding.PEM) for c in (self.cert, *self.chain)]
        return b"".join(pems)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    @property
    def fingerprint(self) -> bytes:
        return self.cert.fingerprint(hashes.SHA256())

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """``name.pem`` and ``name.key`` in ``directory``, replaced atomically."""
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        for path, data in ((key, self.key_pem), (cert, self.cert_pem)):
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return cert, key


class CertificateAuthority:
    def __init__(self, name: str = "meshgate test root") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - HOUR)
            .not_valid_after(_now() + 24 * HOUR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: Path, name: str = "ca") -> Path:
        path = directory / f"{name}.pem"
        path.write_bytes(self.cert_pem)
        return path

    def issue(
        self,
        common_name: str = "",
        *,
        dns: list[str] | None = None,
        uris: list[str] | None = None,
        ips: list[str] | None = None,
        expired: bool = False,
    ) -> Issued:
        """A leaf for both server and client use; ``expired`` ended an hour ago."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
        names += [x509.UniformResourceIdentifier(u) for u in uris or []]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
        )
        start, end = (
            (_now() - 48 * HOUR, _now() - HOUR) if expired else (_now() - HOUR, _now() + 24 * HOUR)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if names:
            # SPIFFE certificates have an empty subject, so the SAN extension is critical.
            builder = builder.add_extension(
                x509.SubjectAlternativeName(names), critical=not common_name
            )
        return Issued(builder.sign(self.key, hashes.SHA256()), key)
