"""A throw-away CA and server certificate, made at start, so clients verify instead of skipping."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["SandboxTls"]


@dataclass(frozen=True)
class SandboxTls:
    """The CA (written as PEM for clients) and the certificate the server presents.

    The certificate carries an IP SAN for 127.0.0.1 as well as `localhost`: Python sends no
    SNI for IP addresses and matches the IP against the SANs.
    """

    ca: trustme.CA
    cert: trustme.LeafCert
    ca_path: Path

    @classmethod
    def create(cls, directory: Path) -> SandboxTls:
        """Make a CA and a leaf certificate; write the CA PEM into `directory`."""
        ca = trustme.CA(organization_name="crmsync sandbox")
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca_path = directory / "sandbox-ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        return cls(ca=ca, cert=cert, ca_path=ca_path)

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting the leaf certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(context)
        return context
