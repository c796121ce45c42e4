"""The certificate manager (ACM) and the local certificate authority.

The parts:

- ``sealed``    the sealed-key format (``SealedKey``: AES-256-GCM ciphertext + KMS-encrypted data key,
                never a plaintext field) and ``open_sealed_key`` for data planes; pure, no control imports.
- ``keys``      ACM's key algorithms: generation, PKCS#8 DER into wipeable buffers, encrypted export.
- ``vault``     ``KeyVault``: seal / open / re-wrap private keys through the key service as ACM.
- ``ca``        ``LocalCA``: root + issuing intermediate in ``DATA_DIR/ca``, leaf issuance, ``export_root``.
- ``domains``   domain-name rules and DNS validation records.
- ``certinfo``  what ACM shows about an X.509 certificate.
- ``manager``   ``CertificateManager``: state, validation, managed renewal, associations, ``seal_for``.
- ``api``       ``AcmApi``: ``CertificateManager.*`` over AWS JSON 1.1.
- ``errors``    ACM's error codes.

No socket code lives here: the control plane's HTTP layer calls ``api``; everything else is values,
SQLite rows and key-service calls.
"""
