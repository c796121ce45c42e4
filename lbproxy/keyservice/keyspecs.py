"""KMS key specs, pure: what each key spec is, which key usages it takes, which algorithms and operations a key
of each kind allows, and the errors AWS gives when a request asks a key for something it cannot do.

A key is one of four kinds (the KMS developer guide's key type table):

==========================  ==========================================  ==========================================
kind                        key specs and usage                         operations
==========================  ==========================================  ==========================================
symmetric                   ``SYMMETRIC_DEFAULT``, ENCRYPT_DECRYPT      Encrypt, Decrypt, ReEncrypt, GenerateDataKey
                                                                        (WithoutPlaintext), GenerateDataKeyPair
                                                                        (WithoutPlaintext); rotation
HMAC                        ``HMAC_224/256/384/512``,                   GenerateMac, VerifyMac
                            GENERATE_VERIFY_MAC
asymmetric encryption       ``RSA_2048/3072/4096``, ENCRYPT_DECRYPT     Encrypt, Decrypt, ReEncrypt, GetPublicKey
asymmetric signing          ``RSA_*``, ``ECC_NIST_P256/P384/P521``,     Sign, Verify, GetPublicKey
                            ``ECC_SECG_P256K1``; SIGN_VERIFY
==========================  ==========================================  ==========================================

Every kind takes DescribeKey, CreateGrant, RetireGrant, aliases, tags, key policies, enabling, disabling and
deletion. A grant may only allow operations the key supports (``check_grant``); an encryption-context constraint
is for symmetric keys only. Asking a key for an operation of another kind is ``InvalidKeyUsageException``;
asking for an algorithm of another key spec too, in AWS's words ("Algorithm X is incompatible with key spec Y.").

Not emulated (``UnsupportedOperationException`` at CreateKey, naming the spec or usage): ``ECC_NIST_EDWARDS25519``
(pyca/cryptography has no Ed25519ph), ``ML_DSA_*``, ``SM2`` (China Regions), and ``KEY_AGREEMENT`` keys
(DeriveSharedSecret).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lbproxy.keyservice.errors import (
    InvalidKeyUsageException,
    UnsupportedOperationException,
    ValidationException,
)

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"

ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
SIGN_VERIFY = "SIGN_VERIFY"
GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
KEY_AGREEMENT = "KEY_AGREEMENT"

SYMMETRIC = "symmetric"
HMAC = "HMAC"
ASYMMETRIC_ENCRYPTION = "asymmetric encryption"
ASYMMETRIC_SIGNING = "asymmetric signing"

RSA_SIGNING_ALGORITHMS = (
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
)
RSA_ENCRYPTION_ALGORITHMS = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")

#: Digest length (bytes) of each algorithm's hash: what MessageType DIGEST must be.
DIGEST_BYTES = {
    **{a: int(a[-3:]) // 8 for a in RSA_SIGNING_ALGORITHMS},
    "ECDSA_SHA_256": 32,
    "ECDSA_SHA_384": 48,
    "ECDSA_SHA_512": 64,
}


@dataclass(frozen=True, slots=True)
class KeySpec:
    name: str
    #: ``symmetric``, ``hmac``, ``rsa`` or ``ecc``.
    family: str
    #: The key usages AWS allows for the spec (the first is the one lbproxy needs no KeyUsage for).
    usages: tuple[str, ...]
    #: Algorithms by key usage.
    algorithms: Mapping[str, tuple[str, ...]]
    #: RSA modulus bits, EC curve name, HMAC key bytes; 32 for the symmetric key.
    size: int | str


SPECS: dict[str, KeySpec] = {
    SYMMETRIC_DEFAULT: KeySpec(
        SYMMETRIC_DEFAULT, "symmetric", (ENCRYPT_DECRYPT,), {ENCRYPT_DECRYPT: (SYMMETRIC_DEFAULT,)}, 32
    ),
    **{
        f"HMAC_{bits}": KeySpec(
            f"HMAC_{bits}", "hmac", (GENERATE_VERIFY_MAC,), {GENERATE_VERIFY_MAC: (f"HMAC_SHA_{bits}",)}, bits // 8
        )
        for bits in (224, 256, 384, 512)
    },
    **{
        f"RSA_{bits}": KeySpec(
            f"RSA_{bits}",
            "rsa",
            (ENCRYPT_DECRYPT, SIGN_VERIFY),
            {ENCRYPT_DECRYPT: RSA_ENCRYPTION_ALGORITHMS, SIGN_VERIFY: RSA_SIGNING_ALGORITHMS},
            bits,
        )
        for bits in (2048, 3072, 4096)
    },
    "ECC_NIST_P256": KeySpec(
        "ECC_NIST_P256", "ecc", (SIGN_VERIFY, KEY_AGREEMENT), {SIGN_VERIFY: ("ECDSA_SHA_256",)}, "secp256r1"
    ),
    "ECC_NIST_P384": KeySpec(
        "ECC_NIST_P384", "ecc", (SIGN_VERIFY, KEY_AGREEMENT), {SIGN_VERIFY: ("ECDSA_SHA_384",)}, "secp384r1"
    ),
    "ECC_NIST_P521": KeySpec(
        "ECC_NIST_P521", "ecc", (SIGN_VERIFY, KEY_AGREEMENT), {SIGN_VERIFY: ("ECDSA_SHA_512",)}, "secp521r1"
    ),
    "ECC_SECG_P256K1": KeySpec(
        "ECC_SECG_P256K1", "ecc", (SIGN_VERIFY,), {SIGN_VERIFY: ("ECDSA_SHA_256",)}, "secp256k1"
    ),
}

#: Key specs in the model that lbproxy does not emulate, and why.
NOT_EMULATED = {
    "ECC_NIST_EDWARDS25519": "pyca/cryptography has no Ed25519ph (ED25519_PH_SHA_512)",
    "ML_DSA_44": "ML-DSA keys are not emulated",
    "ML_DSA_65": "ML-DSA keys are not emulated",
    "ML_DSA_87": "ML-DSA keys are not emulated",
    "SM2": "SM2 keys exist only in the China Regions",
}

#: GenerateDataKeyPair's KeyPairSpec values lbproxy makes (the key pair leaves KMS; no usage rule applies).
DATA_KEY_PAIR_SPECS = (
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
)

#: What every kind of key takes through a grant besides its cryptographic operations.
MANAGEMENT_GRANT_OPERATIONS = frozenset({"CreateGrant", "RetireGrant", "DescribeKey"})
#: Operations a grant's encryption-context constraint does not apply to.
NO_CONTEXT_OPERATIONS = MANAGEMENT_GRANT_OPERATIONS | {"GetPublicKey"}

OPERATIONS: dict[str, frozenset[str]] = {
    SYMMETRIC: frozenset(
        {
            "Encrypt",
            "Decrypt",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
        }
    ),
    HMAC: frozenset({"GenerateMac", "VerifyMac"}),
    ASYMMETRIC_ENCRYPTION: frozenset({"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"}),
    ASYMMETRIC_SIGNING: frozenset({"Sign", "Verify", "GetPublicKey"}),
}


def spec_of(name: str) -> KeySpec:
    return SPECS[name]


def kind(key_spec: str, key_usage: str) -> str:
    """One of ``SYMMETRIC``, ``HMAC``, ``ASYMMETRIC_ENCRYPTION``, ``ASYMMETRIC_SIGNING``."""
    family = SPECS[key_spec].family
    if family == "symmetric":
        return SYMMETRIC
    if family == "hmac":
        return HMAC
    return ASYMMETRIC_ENCRYPTION if key_usage == ENCRYPT_DECRYPT else ASYMMETRIC_SIGNING


def is_symmetric(key_spec: str) -> bool:
    return key_spec == SYMMETRIC_DEFAULT


# -- CreateKey ---------------------------------------------------------------------------------------------


def checked_spec(key_spec: str | None, customer_master_key_spec: str | None, key_usage: str | None) -> tuple[str, str]:
    """CreateKey's ``KeySpec`` (or the deprecated ``CustomerMasterKeySpec``) and ``KeyUsage``, checked: the key
    spec and key usage to create. KeyUsage may only be left out for a symmetric encryption key."""
    if key_spec is not None and customer_master_key_spec is not None and key_spec != customer_master_key_spec:
        raise ValidationException(
            "You cannot specify both KeySpec and CustomerMasterKeySpec; CustomerMasterKeySpec is deprecated, "
            "use KeySpec."
        )
    spec = key_spec or customer_master_key_spec or SYMMETRIC_DEFAULT
    if spec in NOT_EMULATED:
        raise UnsupportedOperationException(f"lbproxy does not emulate KeySpec {spec}: {NOT_EMULATED[spec]}.")
    if spec not in SPECS:  # the model's enum lets nothing else through
        raise ValidationException(f"KeySpec {spec} is not valid.")
    if key_usage is None:
        if spec != SYMMETRIC_DEFAULT:
            raise ValidationException(
                "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."
            )
        key_usage = ENCRYPT_DECRYPT
    if key_usage not in SPECS[spec].usages:
        raise ValidationException(f"KeyUsage {key_usage} is not compatible with KeySpec {spec}")
    if key_usage == KEY_AGREEMENT:
        raise UnsupportedOperationException(
            f"lbproxy does not emulate KeyUsage {KEY_AGREEMENT} (DeriveSharedSecret) for KeySpec {spec}."
        )
    return spec, key_usage


def algorithm_metadata(key_spec: str, key_usage: str) -> dict[str, list[str]]:
    """The ``EncryptionAlgorithms``, ``SigningAlgorithms`` or ``MacAlgorithms`` member of ``KeyMetadata``
    (and of GetPublicKey's answer)."""
    algorithms = list(SPECS[key_spec].algorithms.get(key_usage, ()))
    field = {
        ENCRYPT_DECRYPT: "EncryptionAlgorithms",
        SIGN_VERIFY: "SigningAlgorithms",
        GENERATE_VERIFY_MAC: "MacAlgorithms",
    }[key_usage]
    return {field: algorithms}


# -- what a request may ask of a key -----------------------------------------------------------------------


def check_operation(key_arn: str, key_spec: str, key_usage: str, operation: str) -> None:
    """``InvalidKeyUsageException`` unless a key of this kind supports ``operation`` (AWS's wording:
    "<arn> key usage is SIGN_VERIFY which is not valid for Encrypt.")."""
    if operation not in OPERATIONS[kind(key_spec, key_usage)]:
        shown = "ReEncrypt" if operation.startswith("ReEncrypt") else operation
        raise InvalidKeyUsageException(f"{key_arn} key usage is {key_usage} which is not valid for {shown}.")


def check_algorithm(key_spec: str, key_usage: str, algorithm: str) -> None:
    """The algorithm must be one of the key's (AWS's wording: "Algorithm SYMMETRIC_DEFAULT is incompatible
    with key spec RSA_4096.")."""
    if algorithm not in SPECS[key_spec].algorithms.get(key_usage, ()):
        raise InvalidKeyUsageException(f"Algorithm {algorithm} is incompatible with key spec {key_spec}.")


def check_message(algorithm: str, message_type: str, message: bytes | bytearray) -> None:
    """Sign and Verify: ``DIGEST`` must be exactly the algorithm's digest length; ``EXTERNAL_MU`` is ML-DSA's."""
    if message_type == "EXTERNAL_MU":
        raise ValidationException(f"MessageType EXTERNAL_MU is incompatible with algorithm {algorithm}.")
    if message_type == "DIGEST" and len(message) != DIGEST_BYTES[algorithm]:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")


def max_plaintext(key_spec: str, algorithm: str) -> int:
    """RSAES-OAEP's largest plaintext: modulus bytes - 2 * hash bytes - 2 (RSA_2048: 214 with SHA-1, 190 with
    SHA-256), as the KMS developer guide lists them."""
    bits = SPECS[key_spec].size
    assert isinstance(bits, int)
    hash_bytes = 20 if algorithm == "RSAES_OAEP_SHA_1" else 32
    return bits // 8 - 2 * hash_bytes - 2


def check_no_context(context: Mapping[str, str] | None, what: str = "EncryptionContext") -> None:
    """An encryption context is for symmetric encryption keys only."""
    if context:
        raise ValidationException(
            f"{what} is not valid for this KMS key: an encryption context is supported only on operations with "
            "symmetric encryption KMS keys."
        )


# -- grants ------------------------------------------------------------------------------------------------


def check_grant(
    key_spec: str, key_usage: str, operations: Sequence[str], constraints: Mapping[str, Any] | None
) -> None:
    """CreateGrant's rules that depend on the key (a ``ValidationException`` each, as the model documents): every
    operation must be one the key supports ("you cannot create a grant for a symmetric encryption KMS key that
    allows the Sign operation"), and an encryption-context constraint is for symmetric keys' cryptographic
    operations only."""
    k = kind(key_spec, key_usage)
    allowed = OPERATIONS[k] | MANAGEMENT_GRANT_OPERATIONS
    for op in operations:
        if op not in allowed:
            raise ValidationException(
                f"Grants for {k} KMS keys cannot allow the {op} operation: it is not supported on this KMS key "
                f"(KeySpec {key_spec}, KeyUsage {key_usage})."
            )
    if constraints and k != SYMMETRIC and any(op not in NO_CONTEXT_OPERATIONS for op in operations):
        raise ValidationException(
            "You cannot use an encryption context grant constraint for cryptographic operations with asymmetric "
            "KMS keys or HMAC KMS keys."
        )
