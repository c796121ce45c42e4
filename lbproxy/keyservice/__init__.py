"""The key service (KMS): customer and AWS-managed keys, aliases, key policies, grants.

- ``envelope``  AES-256-GCM with the encryption context bound as canonical AAD; ciphertext blobs that
                name their key. Pure.
- ``policy``    key policy documents: the supported grammar and its evaluation. Pure.
- ``grants``    grant constraints and who may use, retire or revoke a grant. Pure.
- ``rootkey``   the root key that encrypts master key material at rest.
- ``service``   ``KeyService``: the operations, authorization on every call, state in SQLite, events.
- ``api``       ``KmsApi``: ``TrentService.*`` on the wire (AWS JSON 1.1 shapes).
- ``errors``    one class per KMS error code, in AWS's wording.
"""
