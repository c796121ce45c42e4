"""Asymmetric and HMAC keys, data key pairs, driven with boto3 over a real socket; every signature, ciphertext and
key pair is checked independently with pyca/cryptography and the public key KMS gives out."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from awserrors import code, message
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from lbproxy.core.principals import Principal
from lbproxy.testing import ControlThread

HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


@pytest.fixture
def kms(control: ControlThread) -> Any:
    return control.client("kms")


@pytest.fixture
def role(control: ControlThread) -> Principal:
    assert control.plane is not None
    return control.call(lambda: control.plane.principals.ensure_role("lb-asym"))  # type: ignore[union-attr]


def new_key(kms: Any, spec: str, usage: str | None = None, **kw: Any) -> str:
    args: dict[str, Any] = {"KeySpec": spec, **kw}
    if usage is not None:
        args["KeyUsage"] = usage
    return str(kms.create_key(**args)["KeyMetadata"]["KeyId"])


def public_key(kms: Any, key_id: str) -> Any:
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


def check_independently(pub: Any, algorithm: str, message: bytes, signature: bytes, digest: bool = False) -> None:
    """Verify a KMS signature with pyca/cryptography alone (raises InvalidSignature if it is not one)."""
    hash_ = HASHES[algorithm[-3:]]
    chosen = utils.Prehashed(hash_) if digest else hash_
    if algorithm.startswith("ECDSA"):
        pub.verify(signature, message, ec.ECDSA(chosen))
    elif algorithm.startswith("RSASSA_PSS"):
        pub.verify(signature, message, padding.PSS(mgf=padding.MGF1(hash_), salt_length=hash_.digest_size), chosen)
    else:
        pub.verify(signature, message, padding.PKCS1v15(), chosen)


def test_every_signing_key_spec_signs_what_pyca_verifies(kms: Any) -> None:
    """CreateKey for each emulated signing spec; DescribeKey and GetPublicKey say what the key is; every signing
    algorithm of the key signs RAW and DIGEST messages that pyca/cryptography verifies with the public key; KMS
    Verify agrees, and refuses a changed message with KMSInvalidSignatureException."""
    cases = {
        "RSA_2048": ["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
                     "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512"],
        "RSA_3072": ["RSASSA_PSS_SHA_256"],
        "ECC_NIST_P256": ["ECDSA_SHA_256"],
        "ECC_NIST_P384": ["ECDSA_SHA_384"],
        "ECC_NIST_P521": ["ECDSA_SHA_512"],
        "ECC_SECG_P256K1": ["ECDSA_SHA_256"],
    }  # fmt: skip
    msg = b"the message lbproxy signs"
    for spec, algorithms in cases.items():
        key_id = new_key(kms, spec, "SIGN_VERIFY")
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert (md["KeySpec"], md["KeyUsage"], md["CustomerMasterKeySpec"]) == (spec, "SIGN_VERIFY", spec)
        assert "EncryptionAlgorithms" not in md and "MacAlgorithms" not in md
        assert set(algorithms) <= set(md["SigningAlgorithms"])
        pk = kms.get_public_key(KeyId=key_id)
        assert pk["KeySpec"] == spec and pk["KeyUsage"] == "SIGN_VERIFY" and pk["KeyId"] == md["Arn"]
        assert pk["SigningAlgorithms"] == md["SigningAlgorithms"] and "EncryptionAlgorithms" not in pk
        pub = serialization.load_der_public_key(pk["PublicKey"])
        if spec.startswith("RSA"):
            assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == int(spec[4:])
        else:
            assert isinstance(pub, ec.EllipticCurvePublicKey)
            assert pub.curve.name == {"ECC_NIST_P256": "secp256r1", "ECC_NIST_P384": "secp384r1",
                                      "ECC_NIST_P521": "secp521r1", "ECC_SECG_P256K1": "secp256k1"}[spec]  # fmt: skip
        for algorithm in algorithms:
            out = kms.sign(KeyId=key_id, Message=msg, SigningAlgorithm=algorithm)
            assert out["KeyId"] == md["Arn"] and out["SigningAlgorithm"] == algorithm
            check_independently(pub, algorithm, msg, out["Signature"])
            digest = hashlib.new("sha" + algorithm[-3:], msg).digest()
            dsig = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)["Signature"]
            check_independently(pub, algorithm, digest, dsig, digest=True)
            check_independently(pub, algorithm, msg, dsig)  # a DIGEST signature is the RAW message's signature
            ok = kms.verify(KeyId=key_id, Message=msg, Signature=out["Signature"], SigningAlgorithm=algorithm)
            assert ok["SignatureValid"] is True and ok["SigningAlgorithm"] == algorithm
            assert kms.verify(
                KeyId=key_id, Message=digest, MessageType="DIGEST", Signature=dsig, SigningAlgorithm=algorithm
            )["SignatureValid"]
            with pytest.raises(ClientError) as e:
                kms.verify(KeyId=key_id, Message=msg + b"!", Signature=out["Signature"], SigningAlgorithm=algorithm)
            assert code(e) == "KMSInvalidSignatureException"
        with pytest.raises(InvalidSignature):  # and pyca agrees that a changed message is not signed
            check_independently(pub, algorithms[0], msg + b"!", out["Signature"])


def test_sign_and_verify_refuse_what_kms_refuses(kms: Any) -> None:
    rsa_sign = new_key(kms, "RSA_2048", "SIGN_VERIFY")
    ecc = new_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    rsa_enc = new_key(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    hmac_key = new_key(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
    for key_id, usage in (
        (rsa_enc, "ENCRYPT_DECRYPT"),
        (symmetric, "ENCRYPT_DECRYPT"),
        (hmac_key, "GENERATE_VERIFY_MAC"),
    ):
        with pytest.raises(ClientError) as e:
            kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
        assert code(e) == "InvalidKeyUsageException"
        assert message(e).endswith(f"key usage is {usage} which is not valid for Sign.")
    with pytest.raises(ClientError) as e:  # an algorithm of another key spec
        kms.sign(KeyId=ecc, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert code(e) == "InvalidKeyUsageException"
    assert message(e) == "Algorithm RSASSA_PSS_SHA_256 is incompatible with key spec ECC_NIST_P256."
    with pytest.raises(ClientError) as e:  # the right family, the wrong curve's hash
        kms.sign(KeyId=ecc, Message=b"m", SigningAlgorithm="ECDSA_SHA_384")
    assert code(e) == "InvalidKeyUsageException"
    with pytest.raises(ClientError) as e:  # a digest of the wrong length
        kms.sign(KeyId=rsa_sign, Message=b"x" * 31, MessageType="DIGEST", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert (code(e), message(e)) == (
        "ValidationException",
        "Digest is invalid length for algorithm RSASSA_PSS_SHA_256.",
    )
    with pytest.raises(ClientError) as e:  # ML-DSA's message type
        kms.sign(KeyId=rsa_sign, Message=b"x" * 64, MessageType="EXTERNAL_MU", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:  # the model's limit
        kms.sign(KeyId=rsa_sign, Message=b"x" * 4097, SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:  # a signature made with another key
        other = kms.sign(
            KeyId=new_key(kms, "ECC_NIST_P256", "SIGN_VERIFY"), Message=b"m", SigningAlgorithm="ECDSA_SHA_256"
        )
        kms.verify(KeyId=ecc, Message=b"m", Signature=other["Signature"], SigningAlgorithm="ECDSA_SHA_256")
    assert code(e) == "KMSInvalidSignatureException"
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=ecc, Message=b"m", SigningAlgorithm="ECDSA_SHA_256", DryRun=True)
    assert code(e) == "DryRunOperationException"
    for key_id in (symmetric, hmac_key):  # no public key
        with pytest.raises(ClientError) as e:
            kms.get_public_key(KeyId=key_id)
        assert code(e) == "UnsupportedOperationException"

    kms.disable_key(KeyId=ecc)
    for call in (
        lambda: kms.sign(KeyId=ecc, Message=b"m", SigningAlgorithm="ECDSA_SHA_256"),
        lambda: kms.verify(KeyId=ecc, Message=b"m", Signature=b"s", SigningAlgorithm="ECDSA_SHA_256"),
        lambda: kms.get_public_key(KeyId=ecc),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "DisabledException"
    kms.enable_key(KeyId=ecc)
    kms.schedule_key_deletion(KeyId=ecc, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=ecc, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert code(e) == "KMSInvalidStateException"


def test_create_key_specs_and_usages_as_aws(kms: Any) -> None:
    for args, expect in [
        ({"KeySpec": "HMAC_256"}, "ValidationException"),  # KeyUsage is required but for symmetric keys
        ({"KeySpec": "RSA_2048"}, "ValidationException"),
        ({"KeySpec": "HMAC_256", "KeyUsage": "ENCRYPT_DECRYPT"}, "ValidationException"),
        ({"KeySpec": "ECC_NIST_P256", "KeyUsage": "ENCRYPT_DECRYPT"}, "ValidationException"),
        ({"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "SIGN_VERIFY"}, "ValidationException"),
        ({"KeySpec": "RSA_2048", "KeyUsage": "GENERATE_VERIFY_MAC"}, "ValidationException"),
        ({"KeySpec": "ECC_NIST_P256", "KeyUsage": "KEY_AGREEMENT"}, "UnsupportedOperationException"),
        ({"KeySpec": "ECC_NIST_EDWARDS25519", "KeyUsage": "SIGN_VERIFY"}, "UnsupportedOperationException"),
        ({"KeySpec": "ML_DSA_44", "KeyUsage": "SIGN_VERIFY"}, "UnsupportedOperationException"),
        ({"KeySpec": "SM2", "KeyUsage": "SIGN_VERIFY"}, "UnsupportedOperationException"),
        (
            {"KeySpec": "RSA_2048", "CustomerMasterKeySpec": "RSA_3072", "KeyUsage": "SIGN_VERIFY"},
            "ValidationException",
        ),
    ]:
        with pytest.raises(ClientError) as e:
            kms.create_key(**args)
        assert code(e) == expect, args
    with pytest.raises(ClientError) as e:
        kms.create_key(KeySpec="HMAC_224", KeyUsage="SIGN_VERIFY")
    assert message(e) == "KeyUsage SIGN_VERIFY is not compatible with KeySpec HMAC_224"
    # The deprecated CustomerMasterKeySpec still works; the key's rotation is symmetric-only.
    md = kms.create_key(CustomerMasterKeySpec="RSA_4096", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    assert md["KeySpec"] == "RSA_4096" and md["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    assert "SigningAlgorithms" not in md
    for key_id in (md["KeyId"], new_key(kms, "HMAC_512", "GENERATE_VERIFY_MAC")):
        with pytest.raises(ClientError) as e:
            kms.enable_key_rotation(KeyId=key_id)
        assert code(e) == "UnsupportedOperationException"
        assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False


def test_rsa_encryption_keys_encrypt_as_pyca_and_decrypt_what_pyca_encrypts(kms: Any) -> None:
    key_id = new_key(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    pk = kms.get_public_key(KeyId=key_id)
    assert pk["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"] and "SigningAlgorithms" not in pk
    pub = serialization.load_der_public_key(pk["PublicKey"])
    assert isinstance(pub, rsa.RSAPublicKey)
    for algorithm, hash_ in (("RSAES_OAEP_SHA_1", hashes.SHA1()), ("RSAES_OAEP_SHA_256", hashes.SHA256())):
        oaep = padding.OAEP(mgf=padding.MGF1(hash_), algorithm=hash_, label=None)
        out = kms.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionAlgorithm=algorithm)
        assert out["EncryptionAlgorithm"] == algorithm and len(out["CiphertextBlob"]) == 256
        back = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], KeyId=key_id, EncryptionAlgorithm=algorithm)
        assert back["Plaintext"] == b"secret" and back["EncryptionAlgorithm"] == algorithm
        offline = pub.encrypt(b"made outside", oaep)  # what a client does with GetPublicKey's key
        assert kms.decrypt(CiphertextBlob=offline, KeyId=key_id, EncryptionAlgorithm=algorithm)["Plaintext"] == (
            b"made outside"
        )
    most = {"RSAES_OAEP_SHA_1": 214, "RSAES_OAEP_SHA_256": 190}
    for algorithm, n in most.items():
        kms.encrypt(KeyId=key_id, Plaintext=b"x" * n, EncryptionAlgorithm=algorithm)
        with pytest.raises(ClientError) as e:
            kms.encrypt(KeyId=key_id, Plaintext=b"x" * (n + 1), EncryptionAlgorithm=algorithm)
        assert code(e) == "ValidationException"

    blob = kms.encrypt(KeyId=key_id, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    for call, expect in [
        (lambda: kms.encrypt(KeyId=key_id, Plaintext=b"p"), "InvalidKeyUsageException"),  # SYMMETRIC_DEFAULT
        (
            lambda: kms.encrypt(
                KeyId=key_id, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256", EncryptionContext={"a": "b"}
            ),
            "ValidationException",
        ),
        (lambda: kms.decrypt(CiphertextBlob=blob), "InvalidCiphertextException"),  # no KeyId: nothing names the key
        (lambda: kms.decrypt(CiphertextBlob=blob, KeyId=key_id), "InvalidKeyUsageException"),
        (
            lambda: kms.decrypt(CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm="RSAES_OAEP_SHA_1"),
            "InvalidCiphertextException",
        ),
        (lambda: kms.generate_data_key(KeyId=key_id, KeySpec="AES_256"), "InvalidKeyUsageException"),
        (
            lambda: kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256"),
            "InvalidKeyUsageException",
        ),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == expect
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key_id, Plaintext=b"p")
    assert message(e) == "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."
    forged = b"LBK1" + key_id.encode() + (1).to_bytes(4, "big") + bytes(12) + bytes(32)  # a blob naming the RSA key
    for algorithm in ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_256"):
        with pytest.raises(ClientError) as e:
            kms.decrypt(CiphertextBlob=forged, EncryptionAlgorithm=algorithm)
        assert code(e) == "InvalidCiphertextException"

    # ReEncrypt between a symmetric key and the RSA key, both ways.
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    to_rsa = kms.re_encrypt(
        CiphertextBlob=kms.encrypt(KeyId=symmetric, Plaintext=b"moved", EncryptionContext={"c": "1"})["CiphertextBlob"],
        SourceEncryptionContext={"c": "1"},
        DestinationKeyId=key_id,
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    assert to_rsa["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    assert to_rsa["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    back_to_symmetric = kms.re_encrypt(
        CiphertextBlob=to_rsa["CiphertextBlob"],
        SourceKeyId=key_id,
        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        DestinationKeyId=symmetric,
    )
    assert back_to_symmetric["SourceEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    assert kms.decrypt(CiphertextBlob=back_to_symmetric["CiphertextBlob"])["Plaintext"] == b"moved"
    with pytest.raises(ClientError) as e:  # a signing key cannot encrypt
        kms.encrypt(
            KeyId=new_key(kms, "RSA_2048", "SIGN_VERIFY"), Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1"
        )
    assert code(e) == "InvalidKeyUsageException"


def test_hmac_keys(kms: Any) -> None:
    msg = b"authenticate me"
    for bits in (224, 256, 384, 512):
        key_id = new_key(kms, f"HMAC_{bits}", "GENERATE_VERIFY_MAC")
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert md["MacAlgorithms"] == [f"HMAC_SHA_{bits}"] and "EncryptionAlgorithms" not in md
        out = kms.generate_mac(KeyId=key_id, Message=msg, MacAlgorithm=f"HMAC_SHA_{bits}")
        assert len(out["Mac"]) == bits // 8 and out["KeyId"] == md["Arn"]
        again = kms.generate_mac(KeyId=key_id, Message=msg, MacAlgorithm=f"HMAC_SHA_{bits}")["Mac"]
        assert again == out["Mac"]  # deterministic, one key
        ok = kms.verify_mac(KeyId=key_id, Message=msg, Mac=out["Mac"], MacAlgorithm=f"HMAC_SHA_{bits}")
        assert ok["MacValid"] is True and ok["MacAlgorithm"] == f"HMAC_SHA_{bits}"
        for wrong_message, wrong_mac in ((msg + b"!", out["Mac"]), (msg, bytes(len(out["Mac"])))):
            with pytest.raises(ClientError) as e:  # KMS never answers MacValid: false
                kms.verify_mac(KeyId=key_id, Message=wrong_message, Mac=wrong_mac, MacAlgorithm=f"HMAC_SHA_{bits}")
            assert code(e) == "KMSInvalidMacException"
    other = new_key(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
    mac_256 = kms.generate_mac(KeyId=other, Message=msg, MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac_256 != hmac.new(b"\0" * 32, msg, "sha256").digest()
    with pytest.raises(ClientError) as e:  # another key's MAC
        kms.verify_mac(KeyId=key_id, Message=msg, Mac=mac_256, MacAlgorithm="HMAC_SHA_512")
    assert code(e) == "KMSInvalidMacException"
    with pytest.raises(ClientError) as e:
        kms.generate_mac(KeyId=other, Message=msg, MacAlgorithm="HMAC_SHA_512")
    assert (code(e), message(e)) == (
        "InvalidKeyUsageException",
        "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256.",
    )
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.generate_mac(KeyId=symmetric, Message=msg, MacAlgorithm="HMAC_SHA_256")
    assert code(e) == "InvalidKeyUsageException"
    for call in (
        lambda: kms.encrypt(KeyId=other, Plaintext=b"p"),
        lambda: kms.generate_data_key(KeyId=other, KeySpec="AES_256"),
        lambda: kms.generate_data_key_pair(KeyId=other, KeyPairSpec="ECC_NIST_P256"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "InvalidKeyUsageException"
    kms.disable_key(KeyId=other)
    with pytest.raises(ClientError) as e:
        kms.generate_mac(KeyId=other, Message=msg, MacAlgorithm="HMAC_SHA_256")
    assert code(e) == "DisabledException"


def test_data_key_pairs(kms: Any) -> None:
    """The private key is usable (it signs what its public key verifies) and its ciphertext decrypts, under the same
    encryption context only, to the same PKCS#8 DER."""
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    ctx = {"purpose": "pairs"}
    for spec in ("RSA_2048", "ECC_NIST_P256", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"):
        out = kms.generate_data_key_pair(KeyId=key_id, KeyPairSpec=spec, EncryptionContext=ctx)
        assert out["KeyPairSpec"] == spec and out["KeyId"].endswith(key_id)
        private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], password=None)
        public: Any = serialization.load_der_public_key(out["PublicKey"])
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert public.public_bytes(*spki) == private.public_key().public_bytes(*spki)
        if isinstance(private, rsa.RSAPrivateKey):
            sig = private.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
            public.verify(sig, b"m", padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            public.verify(private.sign(b"m", ec.ECDSA(hashes.SHA256())), b"m", ec.ECDSA(hashes.SHA256()))
        else:
            assert isinstance(private, ed25519.Ed25519PrivateKey)
            public.verify(private.sign(b"m"), b"m")
        back = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
        assert back["Plaintext"] == out["PrivateKeyPlaintext"]
        with pytest.raises(ClientError) as e:
            kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext={"purpose": "other"})
        assert code(e) == "InvalidCiphertextException"

    bare = kms.generate_data_key_pair_without_plaintext(KeyId=key_id, KeyPairSpec="ECC_NIST_P384")
    assert "PrivateKeyPlaintext" not in bare
    der = kms.decrypt(CiphertextBlob=bare["PrivateKeyCiphertextBlob"])["Plaintext"]
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"

    for call, expect in [
        (lambda: kms.generate_data_key_pair(KeyId=key_id, KeyPairSpec="SM2"), "UnsupportedOperationException"),
        (
            lambda: kms.generate_data_key_pair(
                KeyId=new_key(kms, "RSA_2048", "ENCRYPT_DECRYPT"), KeyPairSpec="RSA_2048"
            ),
            "InvalidKeyUsageException",
        ),
        (
            lambda: kms.generate_data_key_pair(KeyId=key_id, KeyPairSpec="RSA_2048", DryRun=True),
            "DryRunOperationException",
        ),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == expect


def test_grants_for_the_new_operations_and_the_rules_per_key_type(
    control: ControlThread, kms: Any, role: Principal
) -> None:
    signing = new_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    mac_key = new_key(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    lb = control.client("kms", role)
    with pytest.raises(ClientError) as e:
        lb.sign(KeyId=signing, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert code(e) == "AccessDeniedException" and "kms:Sign" in message(e)

    # A grant may allow only what the key supports, and constrains the encryption context of symmetric keys only.
    for key_id, ops in [
        (symmetric, ["Sign"]),
        (symmetric, ["Decrypt", "VerifyMac"]),
        (symmetric, ["GetPublicKey"]),
        (signing, ["GenerateDataKey"]),
        (signing, ["Encrypt"]),
        (signing, ["GenerateMac"]),
        (mac_key, ["Sign"]),
        (mac_key, ["GenerateDataKeyPair"]),
        (symmetric, ["DeriveSharedSecret"]),
        (symmetric, ["CreateGrant"]),
    ]:
        with pytest.raises(ClientError) as e:
            kms.create_grant(KeyId=key_id, GranteePrincipal=role.arn, Operations=ops)
        assert code(e) == "ValidationException", (key_id, ops)
    with pytest.raises(ClientError) as e:
        kms.create_grant(
            KeyId=signing,
            GranteePrincipal=role.arn,
            Operations=["Sign"],
            Constraints={"EncryptionContextEquals": {"a": "b"}},
        )
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms.create_grant(
            KeyId=symmetric,
            GranteePrincipal=role.arn,
            Operations=["Decrypt"],
            Constraints={"EncryptionContextSubset": {str(i): "v" for i in range(9)}},
        )
    assert code(e) == "ValidationException"

    g = kms.create_grant(KeyId=signing, GranteePrincipal=role.arn, Operations=["Sign", "GetPublicKey", "DescribeKey"])
    sig = lb.sign(KeyId=signing, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    pub = serialization.load_der_public_key(lb.get_public_key(KeyId=signing)["PublicKey"])
    check_independently(pub, "ECDSA_SHA_256", b"m", sig)
    with pytest.raises(ClientError) as e:  # Verify was not granted
        lb.verify(KeyId=signing, Message=b"m", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
    assert code(e) == "AccessDeniedException"
    kms.create_grant(KeyId=mac_key, GranteePrincipal=role.arn, Operations=["GenerateMac"])
    mac = lb.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert kms.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    with pytest.raises(ClientError) as e:
        lb.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")
    assert code(e) == "AccessDeniedException"
    kms.create_grant(
        KeyId=symmetric,
        GranteePrincipal=role.arn,
        Operations=["GenerateDataKeyPair"],
        Constraints={"EncryptionContextEquals": {"app": "web"}},
    )
    assert lb.generate_data_key_pair(KeyId=symmetric, KeyPairSpec="ECC_NIST_P256", EncryptionContext={"app": "web"})
    with pytest.raises(ClientError) as e:  # the grant's constraint holds
        lb.generate_data_key_pair(KeyId=symmetric, KeyPairSpec="ECC_NIST_P256", EncryptionContext={"app": "db"})
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:  # GenerateDataKeyPairWithoutPlaintext is its own operation
        lb.generate_data_key_pair_without_plaintext(
            KeyId=symmetric, KeyPairSpec="ECC_NIST_P256", EncryptionContext={"app": "web"}
        )
    assert code(e) == "AccessDeniedException"

    kms.revoke_grant(KeyId=signing, GrantId=g["GrantId"])
    with pytest.raises(ClientError) as e:
        lb.sign(KeyId=signing, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert code(e) == "AccessDeniedException"
    records = [json.loads(x) for x in (control.settings.data_dir / "audit.jsonl").read_text().splitlines()]
    signed = next(r for r in records if r["eventName"] == "Sign" and "errorCode" not in r)
    assert signed["additionalEventData"]["grantId"] == g["GrantId"]
    assert signed["requestParameters"] == {"keyId": signing, "signingAlgorithm": "ECDSA_SHA_256", "messageType": "RAW"}


def test_private_key_material_is_never_at_rest_in_the_clear(control: ControlThread, kms: Any) -> None:
    """A data key pair's private key and an asymmetric key's signature key leave no plaintext in the data dir or the
    audit log."""
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    pair = kms.generate_data_key_pair(KeyId=symmetric, KeyPairSpec="ECC_NIST_P256")
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    scalar = private.private_numbers().private_value.to_bytes(32, "big")
    random = kms.generate_random(NumberOfBytes=64)["Plaintext"]
    signing = new_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    assert control.plane is not None
    service = control.plane.kms

    def unwrapped() -> bytes:  # the key service's own view: the PKCS#8 DER it unwraps for one signature
        with service._material(service._resolve(signing)) as (der, _):
            return bytes(der)

    der = control.call(unwrapped)
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert (
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        == kms.get_public_key(KeyId=signing)["PublicKey"]
    )
    signing_scalar = key.private_numbers().private_value.to_bytes(32, "big")
    files = b"".join(p.read_bytes() for p in control.settings.data_dir.rglob("*") if p.is_file())
    for secret in (pair["PrivateKeyPlaintext"], scalar, random, der, signing_scalar):
        assert secret not in files
