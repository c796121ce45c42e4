"""The certificate manager's pure parts, on values (no database, no key service): ARNs, the lifecycle's
decisions (validation, managed renewal), what ListCertificates filters on, tags, and what ImportCertificate
accepts."""

from __future__ import annotations

import datetime as dt

import pytest
import trustme

from lbproxy.certs import details, lifecycle, records, tags
from lbproxy.certs.errors import (
    InvalidArgsException,
    InvalidArnException,
    InvalidTagException,
    ResourceNotFoundException,
    TooManyTagsException,
    ValidationException,
)
from lbproxy.certs.imported import read_import

NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
WINDOW_DAYS = 60
DELAY = 5.0


@pytest.fixture(scope="module")
def leaf() -> trustme.LeafCert:
    return trustme.CA().issue_cert("www.example.test", not_before=NOT_BEFORE, not_after=NOT_AFTER)


def _issued(leaf: trustme.LeafCert, **meta: object) -> records.Certificate:
    pem = leaf.cert_chain_pems[0].bytes().decode()
    return records.Certificate("arn", records.AMAZON_ISSUED, records.ISSUED, 0.0, dict(meta), certificate_pem=pem)


def test_arns() -> None:
    arn = records.new_arn("us-east-1")
    records.check_arn(arn, "us-east-1")
    with pytest.raises(ResourceNotFoundException):
        records.check_arn(arn, "eu-west-1")
    with pytest.raises(ValidationException, match="regular expression"):
        records.check_arn("not an arn", "us-east-1")
    with pytest.raises(InvalidArnException):
        records.check_arn("arn:aws:acm:us-east-1:000000000000:certificate/x", "us-east-1")


def test_validation_is_due_after_the_delay() -> None:
    cert = records.Certificate("arn", records.AMAZON_ISSUED, records.PENDING_VALIDATION, 100.0)
    assert not lifecycle.validation_due(cert, 104.9, DELAY)
    assert lifecycle.validation_due(cert, 105.0, DELAY)


def test_managed_renewal_steps(leaf: trustme.LeafCert) -> None:
    window = NOT_AFTER.timestamp() - WINDOW_DAYS * 86400
    cert = _issued(leaf)
    assert lifecycle.renewal_step(cert, window - 1, WINDOW_DAYS) is lifecycle.RenewalStep.NOTHING
    assert lifecycle.renewal_step(cert, window, WINDOW_DAYS) is lifecycle.RenewalStep.START

    cert.meta["renewal"] = lifecycle.renewal_pending(window, DELAY)
    assert lifecycle.renewal_step(cert, window + 1, WINDOW_DAYS) is lifecycle.RenewalStep.NOTHING
    assert lifecycle.renewal_step(cert, window + DELAY, WINDOW_DAYS) is lifecycle.RenewalStep.RENEW

    cert.meta["renewal"] = lifecycle.renewal_failed(window + DELAY)
    retry = window + DELAY + lifecycle.RENEWAL_RETRY
    assert lifecycle.renewal_step(cert, retry - 1, WINDOW_DAYS) is lifecycle.RenewalStep.NOTHING
    assert lifecycle.renewal_step(cert, retry, WINDOW_DAYS) is lifecycle.RenewalStep.START

    assert records.status_at(cert, NOT_AFTER + dt.timedelta(seconds=1)) == records.EXPIRED
    assert records.status_at(cert, NOT_AFTER - dt.timedelta(seconds=1)) == records.ISSUED


def test_list_filter(leaf: trustme.LeafCert) -> None:
    now = NOT_BEFORE + dt.timedelta(days=1)
    ec_cert = _issued(leaf, key_algorithm="EC_prime256v1")
    assert not details.ListFilter.of(None, None).matches(ec_cert, now)  # RSA_2048 only by default
    assert details.ListFilter.of(None, {"keyTypes": ["EC_prime256v1"]}).matches(ec_cert, now)
    assert not details.ListFilter.of(["EXPIRED"], {"keyTypes": ["EC_prime256v1"]}).matches(ec_cert, now)
    ekus = {"keyTypes": ["EC_prime256v1"], "extendedKeyUsage": ["TLS_WEB_SERVER_AUTHENTICATION"]}
    assert details.ListFilter.of(None, ekus).matches(ec_cert, now)
    assert not details.ListFilter.of(None, {**ekus, "extendedKeyUsage": ["EMAIL_PROTECTION"]}).matches(ec_cert, now)
    assert details.decode_token(details.encode_token(7)) == 7
    for bad in ("%%%", details.encode_token(-1)):
        with pytest.raises(InvalidArgsException):
            details.decode_token(bad)


def test_tags() -> None:
    current = tags.with_tags([{"Key": "a", "Value": "1"}, {"Key": "b"}], {})
    assert tags.tag_list(current) == [{"Key": "a", "Value": "1"}, {"Key": "b"}]
    assert tags.without_tags([{"Key": "a", "Value": "2"}], current) == current  # value differs: stays
    assert tags.without_tags([{"Key": "a"}, {"Key": "b"}], current) == {}
    with pytest.raises(InvalidTagException):
        tags.with_tags([{"Key": "AWS:x"}], {})
    with pytest.raises(TooManyTagsException):
        tags.with_tags([{"Key": f"k{i}"} for i in range(tags.MAX_TAGS + 1)], {})


def test_read_import(leaf: trustme.LeafCert) -> None:
    cert_pem = leaf.cert_chain_pems[0].bytes()
    key_pem = leaf.private_key_pem.bytes()
    key, imp = read_import(cert_pem, bytearray(key_pem), None, NOT_BEFORE + dt.timedelta(days=1))
    assert key.key_size == 256 and imp.key_algorithm == "EC_prime256v1"
    assert imp.names == ["www.example.test"] and imp.domain_name == "www.example.test" and imp.chain == []
    with pytest.raises(ValidationException, match="expired"):
        read_import(cert_pem, bytearray(key_pem), None, NOT_AFTER + dt.timedelta(days=1))
    with pytest.raises(ValidationException, match="more than one"):
        read_import(cert_pem * 2, bytearray(key_pem), None, NOT_BEFORE)
    other = trustme.CA().issue_cert("x.test").private_key_pem.bytes()
    with pytest.raises(ValidationException, match="does not match"):
        read_import(cert_pem, bytearray(other), None, NOT_BEFORE + dt.timedelta(days=1))
