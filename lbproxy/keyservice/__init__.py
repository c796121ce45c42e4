"""The key service (KMS): customer and AWS-managed keys (symmetric, HMAC, asymmetric RSA and ECC), aliases, key
policies, grants, tags.

Pure (no I/O):

- ``envelope``    AES-256-GCM with the encryption context bound as canonical AAD; ciphertext blobs that
                  name their key.
- ``keyspecs``    key specs and key usages: which algorithms and operations each kind of key allows, what a
                  grant may allow on it, what is not emulated.
- ``asymmetric``  RSA and ECC with pyca/cryptography: key pairs into wipeable buffers, signatures, RSAES-OAEP.
- ``tags``        KMS's tag rules.
- ``policy``      key policy documents: the supported grammar and its evaluation.
- ``grants``      grant constraints, who may use, retire or revoke a grant, CreateGrant's parameter rules.
- ``keys``        the ``Key`` record, ``KeyMetadata``, which key states allow what, rotation dates.
- ``names``       key ids, key and alias ARNs, alias names, what an identifier points at.
- ``pages``       ``Limit``/``Marker`` pagination of the List* operations.

State and operations:

- ``rootkey``     the root key that encrypts master key material at rest.
- ``keystore``    the tables, and what every operation does first: resolve, authorize, unwrap material.
- ``management``  CreateKey, DescribeKey, ListKeys, Enable/DisableKey, UpdateKeyDescription, Get/PutKeyPolicy,
                  ListKeyPolicies.
- ``aliases``     CreateAlias, UpdateAlias, DeleteAlias, ListAliases.
- ``crypto``      Encrypt, GenerateDataKey, Decrypt, ReEncrypt (symmetric and RSA), GenerateRandom.
- ``keypairs``    GenerateDataKeyPair(WithoutPlaintext).
- ``signing``     Sign, Verify, GetPublicKey.
- ``macs``        GenerateMac, VerifyMac.
- ``grantops``    CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.
- ``tagops``      TagResource, UntagResource, ListResourceTags.
- ``schedule``    key deletion and rotation over time, and ``tick`` (the sweep).
- ``service``     ``KeyService``: all of the above on one object (what the control plane builds).
- ``api``         ``KmsApi``: ``TrentService.*`` on the wire (AWS JSON 1.1 shapes).
- ``errors``      one class per KMS error code, in AWS's wording.
"""
