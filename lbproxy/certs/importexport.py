"""ImportCertificate and ExportCertificate: keys that come in from outside and go out encrypted.

An import (what is accepted: ``imported.read_import``) is sealed at once and the caller's buffer zeroed;
a re-import over an ``IMPORTED`` certificate keeps its ARN, and its users are told to rotate. An export
(only of a certificate requested with ``Options.Export = ENABLED``) gives the key as passphrase-encrypted
PKCS#8 PEM, zeroes the passphrase, and marks the certificate exported (which makes it eligible for
managed renewal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lbproxy.certs import certinfo, keys
from lbproxy.certs.certstore import CertificateStore
from lbproxy.certs.errors import ValidationException, in_progress
from lbproxy.certs.imported import read_import
from lbproxy.certs.lifecycle import REASON_REIMPORTED
from lbproxy.certs.records import AMAZON_ISSUED, IMPORTED, ISSUED, Certificate, key_context
from lbproxy.certs.tags import with_tags
from lbproxy.contract.sealed import wipe
from lbproxy.contract.vocabulary import CERTIFICATE_IMPORTED


class ImportExport(CertificateStore):
    def import_certificate(
        self,
        certificate: bytes | bytearray,
        private_key: bytearray,
        *,
        certificate_chain: bytes | bytearray | None = None,
        certificate_arn: str | None = None,
        tags: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """Import (or re-import over ``certificate_arn``) a certificate and its key; the key is sealed and
        ``private_key`` is zeroed before this returns, whatever happens."""
        try:
            return self._import(certificate, private_key, certificate_chain, certificate_arn, tags)
        finally:
            wipe(private_key)

    def _import(
        self,
        certificate: bytes | bytearray,
        private_key: bytearray,
        certificate_chain: bytes | bytearray | None,
        certificate_arn: str | None,
        tags: Sequence[Mapping[str, Any]] | None,
    ) -> str:
        key, imp = read_import(certificate, private_key, certificate_chain, self._clock.now())
        now = self._clock.time()
        with self._lock:
            if certificate_arn:
                existing = self._require(certificate_arn)
                if existing.type != IMPORTED:
                    raise ValidationException(
                        f"Certificate {certificate_arn} is not an imported certificate and cannot be re-imported."
                    )
                if tags:
                    raise ValidationException("Tags cannot be specified when re-importing a certificate.")
                rec = existing
                arn = existing.arn
            else:
                arn = self._new_arn()
                rec = Certificate(arn, IMPORTED, ISSUED, now, {"tags": with_tags(tags or [], {})})
            sealed = self.vault.seal_key(key, label=arn, context=key_context(arn))
            del key
            rec.status = ISSUED
            rec.meta.update(
                {
                    "domain_name": imp.domain_name,
                    "names": imp.names,
                    "key_algorithm": imp.key_algorithm,
                    "imported_at": now,
                    "options": {"CertificateTransparencyLoggingPreference": "DISABLED", "Export": "DISABLED"},
                    "exported": False,
                }
            )
            rec.certificate_pem = certinfo.to_pem(imp.certificate)
            rec.chain_pem = "".join(certinfo.to_pem(c) for c in imp.chain) or None
            rec.sealed = sealed
            rec._info = None
            with self._db.transaction():
                self._save(rec, insert=certificate_arn is None)
                if certificate_arn is None:
                    self._events.publish(CERTIFICATE_IMPORTED, {"certificateArn": arn, "serial": imp.info.serial})
                elif self._in_use_rows(arn):
                    self._publish_renewed(rec, REASON_REIMPORTED)
        return arn

    def export_certificate(self, arn: str, passphrase: bytearray, *, for_account: bool = False) -> dict[str, str]:
        """Certificate, chain and the key as encrypted PKCS#8 PEM; only with ``Options.Export = ENABLED``, and never
        (``for_account``) a certificate another service owns."""
        try:
            with self._lock:
                cert = self._get(arn)
                if for_account:
                    self._refuse_owned(cert, "exported")
                if cert.export_option != "ENABLED" or cert.type != AMAZON_ISSUED:
                    raise ValidationException(
                        f"Certificate {arn} is not exportable. Only certificates requested with "
                        "Options.Export set to ENABLED can be exported."
                    )
                if cert.sealed is None or cert.certificate_pem is None:
                    raise in_progress(arn)
                with self.vault.private_key(cert.sealed) as key:
                    pem = keys.encrypted_pem(key, passphrase)
                if not cert.meta.get("exported"):
                    cert.meta["exported"] = True
                    self._save(cert)
                return {
                    "Certificate": cert.certificate_pem,
                    "CertificateChain": cert.chain_pem or "",
                    "PrivateKey": pem,
                }
        finally:
            wipe(passphrase)
