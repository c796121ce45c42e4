"""The local certificate authority: a root and an issuing intermediate, created on first start.

Files in ``DATA_DIR/ca/``:

- ``root.pem``, ``intermediate.pem``   the CA certificates (public; ``lbproxy ca export`` prints the root)
- ``root.key.sealed``, ``intermediate.key.sealed``   their private keys as ``SealedKey`` JSON, sealed
  under ``alias/aws/acm`` with context ``{"lbproxy:ca": "root" | "intermediate"}``

The root signs only the intermediate; the intermediate signs leaves, the way a public CA is laid out.
Leaves look like ACM's: subject ``CN=<domain>``, every name in the SAN, 395 days of validity, key usage
digitalSignature (+ keyEncipherment for RSA), EKU serverAuth, SKI/AKI. Signing keys are opened from
their sealed form for each signature and dropped right after.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lbproxy.certs import keys
from lbproxy.certs.vault import KeyVault
from lbproxy.contract.sealed import SealedKey
from lbproxy.core.clock import Clock

log = logging.getLogger("lbproxy.certs")

CA_DIR = "ca"
ROOT_CERT = "root.pem"
INTERMEDIATE_CERT = "intermediate.pem"
ROOT_KEY = "root.key.sealed"
INTERMEDIATE_KEY = "intermediate.key.sealed"
CA_CONTEXT_KEY = "lbproxy:ca"

LEAF_VALIDITY = dt.timedelta(days=395)
ROOT_VALIDITY = dt.timedelta(days=20 * 365)
INTERMEDIATE_VALIDITY = dt.timedelta(days=10 * 365)
#: Leaves are back-dated a little, for clients whose clocks run behind.
BACKDATE = dt.timedelta(minutes=5)
ORGANIZATION = "lbproxy"
ROOT_NAME = "lbproxy Local Root CA"
INTERMEDIATE_NAME = "lbproxy Local Issuing CA R1"


class CAError(RuntimeError):
    pass


def ca_dir(data_dir: Path) -> Path:
    return Path(data_dir) / CA_DIR


def export_root(data_dir: Path) -> str:
    """The root certificate (PEM) of the CA in ``data_dir``, for ``lbproxy ca export``."""
    path = ca_dir(data_dir) / ROOT_CERT
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise CAError(
            f"no local CA in {data_dir} yet (expected {path}); start `lbproxy control` once to create it"
        ) from None


def _owner() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _owner()),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_private(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class LocalCA:
    def __init__(
        self,
        directory: Path,
        vault: KeyVault,
        clock: Clock,
        root: x509.Certificate,
        intermediate: x509.Certificate,
        intermediate_key: SealedKey,
    ) -> None:
        self.directory = directory
        self._vault = vault
        self._clock = clock
        self.root = root
        self.intermediate = intermediate
        self._intermediate_key = intermediate_key
        self.root_pem = root.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self.intermediate_pem = intermediate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def open_or_create(cls, data_dir: Path, vault: KeyVault, clock: Clock) -> LocalCA:
        directory = ca_dir(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        files = [directory / n for n in (ROOT_CERT, INTERMEDIATE_CERT, ROOT_KEY, INTERMEDIATE_KEY)]
        if all(p.exists() for p in files):
            return cls._load(directory, vault, clock)
        if any(p.exists() for p in files):
            raise CAError(f"incomplete local CA in {directory}: remove the directory to create a new one")
        return cls._create(directory, vault, clock)

    @classmethod
    def _load(cls, directory: Path, vault: KeyVault, clock: Clock) -> LocalCA:
        root = x509.load_pem_x509_certificate((directory / ROOT_CERT).read_bytes())
        intermediate = x509.load_pem_x509_certificate((directory / INTERMEDIATE_CERT).read_bytes())
        sealed = SealedKey.from_json(json.loads((directory / INTERMEDIATE_KEY).read_text()))
        return cls(directory, vault, clock, root, intermediate, sealed)

    @classmethod
    def _create(cls, directory: Path, vault: KeyVault, clock: Clock) -> LocalCA:
        now = clock.now().astimezone(dt.UTC)
        root_key = keys.generate("RSA_2048")
        root_name = _name(ROOT_NAME)
        root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + ROOT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(root_ski, critical=False)
            .sign(root_key, hashes.SHA256())
        )
        inter_key = keys.generate("RSA_2048")
        inter = (
            x509.CertificateBuilder()
            .subject_name(_name(INTERMEDIATE_NAME))
            .issuer_name(root_name)
            .public_key(inter_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + INTERMEDIATE_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        root_sealed = vault.seal_key(root_key, label="ca:root", context={CA_CONTEXT_KEY: "root"})
        inter_sealed = vault.seal_key(inter_key, label="ca:intermediate", context={CA_CONTEXT_KEY: "intermediate"})
        del root_key, inter_key
        # Keys first, certificates last: a CA with both certificates is a complete one.
        _write_private(directory / ROOT_KEY, json.dumps(root_sealed.to_json(), indent=1), 0o600)
        _write_private(directory / INTERMEDIATE_KEY, json.dumps(inter_sealed.to_json(), indent=1), 0o600)
        _write_private(directory / INTERMEDIATE_CERT, inter.public_bytes(serialization.Encoding.PEM).decode(), 0o644)
        _write_private(directory / ROOT_CERT, root.public_bytes(serialization.Encoding.PEM).decode(), 0o644)
        log.info("created local CA in %s (root serial %x)", directory, root.serial_number)
        return cls(directory, vault, clock, root, inter, inter_sealed)

    # -- issuing -------------------------------------------------------------------------------

    @property
    def chain_pem(self) -> str:
        """The chain served after a leaf: the intermediate, then the root (as ACM's GetCertificate)."""
        return self.intermediate_pem + self.root_pem

    @property
    def issuer_name(self) -> str:
        return ORGANIZATION

    def issue(
        self,
        public_key: keys.PublicKey,
        domain_name: str,
        names: Sequence[str],
        *,
        not_before: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A leaf for ``names`` (``domain_name`` first), signed by the intermediate."""
        start = (not_before or self._clock.now()).astimezone(dt.UTC) - BACKDATE
        start = start.replace(microsecond=0)
        end = start + BACKDATE + LEAF_VALIDITY
        end = min(end, self.intermediate.not_valid_after_utc)
        sans: list[x509.GeneralName] = []
        for n in dict.fromkeys([domain_name, *names]):
            sans.append(x509.DNSName(n))
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain_name)]))
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=is_rsa,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(_rsa_or_ec(self.intermediate.public_key())),
                critical=False,
            )
        )
        with self._vault.private_key(self._intermediate_key) as signer:
            return builder.sign(signer, hashes.SHA256())


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _rsa_or_ec(key: object) -> keys.PublicKey:
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return key
    raise CAError(f"unsupported CA key type {type(key).__name__}")
