# Test certificates, made at test time with `cryptography`: a CA, server
# certificates for 127.0.0.1 signed by it, and client certificates (subject CN)
# for TLS client authentication. Written as PEM files into a test folder. A cluster
# node's certificate names its node id as the DNS SAN `node-<id>` (`node_id=`).
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class Issued:
    cert: Path
    key: Path
    serial: int


class CA:
    def __init__(self, folder, name="Junction Test CA"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(_NOW - datetime.timedelta(days=1))
                     .not_valid_after(_NOW + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        safe = name.replace(" ", "_")
        self.path = self.folder / f"{safe}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn, filename, server=True, node_id=None):
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.name)
             .public_key(key.public_key()).serial_number(serial)
             .not_valid_before(_NOW - datetime.timedelta(days=1))
             .not_valid_after(_NOW + datetime.timedelta(days=30)))
        node_names = [] if node_id is None else [x509.DNSName(f"node-{node_id}")]
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                             x509.DNSName("localhost"), *node_names]),
                                critical=False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.folder / f"{filename}.crt", self.folder / f"{filename}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        return Issued(cert_path, key_path, serial)

    def client_context(self, client=None):
        """An SSL context trusting this CA, presenting `client` (Issued) if given."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.path))
        if client is not None:
            ctx.load_cert_chain(str(client.cert), str(client.key))
        return ctx


def served_serial(host, port, ca):
    """The serial number of the certificate a TLS server presents now."""
    import socket

    ctx = ca.client_context()
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number
