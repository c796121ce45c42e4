"""The local CA against a real key service: creation, reload, leaves that stock clients accept."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from lbproxy.certs import ca as ca_mod
from lbproxy.certs import keys
from lbproxy.certs.ca import CAError, LocalCA, export_root
from lbproxy.certs.vault import KeyVault
from lbproxy.core.clock import ManualClock
from lbproxy.core.events import EventLog
from lbproxy.core.store import Database
from lbproxy.keyservice.service import KeyService


@pytest.fixture
def vault(tmp_path: Path, clock: ManualClock) -> Iterator[KeyVault]:
    db = Database(tmp_path / "state.sqlite3")
    kms = KeyService(db, EventLog(db, clock), clock, tmp_path, "us-east-1")
    try:
        yield KeyVault(kms)
    finally:
        kms.close()
        db.close()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_created_once_then_loaded(tmp_path: Path, vault: KeyVault, clock: ManualClock) -> None:
    ca = LocalCA.open_or_create(tmp_path, vault, clock)
    files = sorted(p.name for p in (tmp_path / "ca").iterdir())
    assert files == ["intermediate.key.sealed", "intermediate.pem", "root.key.sealed", "root.pem"]
    assert (tmp_path / "ca" / "root.key.sealed").stat().st_mode & 0o077 == 0
    again = LocalCA.open_or_create(tmp_path, vault, clock)
    assert again.root == ca.root and again.intermediate == ca.intermediate
    assert export_root(tmp_path) == ca.root_pem
    bc = ca.root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ibc = ca.intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert ibc.ca and ibc.path_length == 0
    # Sealed under aws/acm with the CA context: readable through the vault, and only through it.
    sealed_doc = (tmp_path / "ca" / "intermediate.key.sealed").read_text()
    assert "PRIVATE KEY" not in sealed_doc and '"lbproxy:ca": "intermediate"' in sealed_doc


def test_incomplete_ca_is_refused(tmp_path: Path, vault: KeyVault, clock: ManualClock) -> None:
    LocalCA.open_or_create(tmp_path, vault, clock)
    (tmp_path / "ca" / "intermediate.pem").unlink()
    with pytest.raises(CAError, match="incomplete"):
        LocalCA.open_or_create(tmp_path, vault, clock)


def test_export_root_without_ca(tmp_path: Path) -> None:
    with pytest.raises(CAError, match="lbproxy control"):
        export_root(tmp_path / "nothing")


@pytest.mark.parametrize("algorithm", ["RSA_2048", "EC_prime256v1"])
def test_leaf_is_public_ca_shaped(tmp_path: Path, vault: KeyVault, clock: ManualClock, algorithm: str) -> None:
    ca = LocalCA.open_or_create(tmp_path, vault, clock)
    key = keys.generate(algorithm)
    leaf = ca.issue(key.public_key(), "www.example.com", ["www.example.com", "*.example.com"])
    assert abs((leaf.not_valid_after_utc - clock.now()) - ca_mod.LEAF_VALIDITY) < dt.timedelta(seconds=1)
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "www.example.com",
        "*.example.com",
    ]
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment == (algorithm == "RSA_2048")
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ski = ca.intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == ski
    leaf.verify_directly_issued_by(ca.intermediate)
    ca.intermediate.verify_directly_issued_by(ca.root)


def _serve_once(ctx: ssl.SSLContext, sock: socket.socket) -> threading.Thread:
    def run() -> None:
        conn, _ = sock.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello " + tls.recv(5))
        except (ssl.SSLError, OSError):
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_openssl_and_python_ssl_accept_the_chain(tmp_path: Path, vault: KeyVault, clock: ManualClock) -> None:
    ca = LocalCA.open_or_create(tmp_path, vault, clock)
    key = keys.generate("RSA_2048")
    leaf = ca.issue(key.public_key(), "www.example.com", ["*.example.com"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "root.pem").write_text(export_root(tmp_path))
    (out / "intermediate.pem").write_text(ca.intermediate_pem)
    (out / "leaf.pem").write_bytes(_pem(leaf))
    res = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "-purpose",
            "sslserver",
            "leaf.pem",
        ],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and "leaf.pem: OK" in res.stdout, res.stdout + res.stderr

    (out / "fullchain.pem").write_text(_pem(leaf).decode() + ca.chain_pem)
    (out / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(out / "fullchain.pem", out / "key.pem")
    client = ssl.create_default_context(cafile=str(out / "root.pem"))
    for hostname in ("www.example.com", "api.example.com"):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            t = _serve_once(server, listener)
            with (
                socket.create_connection(listener.getsockname()) as raw,
                client.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                tls.sendall(b"world")
                assert tls.recv(100) == b"hello world"
                peer = tls.getpeercert()
                assert peer is not None and peer["subject"] == ((("commonName", "www.example.com"),),)
            t.join(5)
    # A name outside the certificate is refused by the stock client.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        t = _serve_once(server, listener)
        with socket.create_connection(listener.getsockname()) as raw, pytest.raises(ssl.SSLCertVerificationError):
            client.wrap_socket(raw, server_hostname="www.example.org")
        t.join(5)
