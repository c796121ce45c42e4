"""The certificate manager (ACM) and the local certificate authority.

Pure (values in, values out):

- ``records``       the ``Certificate`` as stored, its ARN, the encryption contexts its key is sealed under.
- ``lifecycle``     when a certificate moves on: validation and managed renewal, decided on values.
- ``details``       what DescribeCertificate and ListCertificates show, the list filter and its token.
- ``tags``          ACM's tag rules (50 per certificate, ``aws:`` reserved, the model's character set).
- ``imported``      what ImportCertificate accepts: certificate, chain and key, checked.
- ``domains``       domain-name rules and DNS validation records.
- ``certinfo``      what ACM shows about an X.509 certificate.
- ``keys``          ACM's key algorithms: generation, PKCS#8 DER into wipeable buffers, encrypted export.

State and operations:

- ``vault``         ``KeyVault``: seal / open / re-wrap private keys through the key service as ACM (the
                    sealed format itself is ``lbproxy.contract.sealed``).
- ``ca``            ``LocalCA``: root + issuing intermediate in ``DATA_DIR/ca``, leaf issuance, ``export_root``.
- ``certstore``     the tables, and the steps every operation shares: load and bring up to date, save, mint.
- ``issuance``      RequestCertificate (idempotency tokens) and validation: ``PENDING_VALIDATION`` -> ``ISSUED``.
- ``renewal``       managed renewal and RenewCertificate.
- ``importexport``  ImportCertificate (and re-import), ExportCertificate.
- ``associations``  ``InUseBy``, the KMS grant a load balancer decrypts with, ``seal_for`` (its bundle).
- ``manager``       ``CertificateManager``: all of the above on one object, with the reads, deletion and tags;
                    a certificate another service owns (Lightsail's) is read-only to the account's ACM API.
- ``api``           ``AcmApi``: ``CertificateManager.*`` over AWS JSON 1.1.
- ``errors``        ACM's error codes.

No socket code lives here: the control plane's HTTP layer calls ``api``; everything else is values,
SQLite rows and key-service calls.
"""
