"""``set_up_load_balancer``: a load balancer with HTTPS, set up as a user would, through the public API.

Every step is an ordinary AWS call (botocore, SigV4 as the ``admin`` profile of ``DATA_DIR/credentials``)
or one of lbproxy's documented admin extensions (registering an instance's address), and every step is
idempotent: a second run reuses the load balancer, the certificate and its attachment, re-registers the
instances' addresses, and re-attaches the certificate if its grant was revoked or it was detached.

1. register the instances (``PUT /lbproxy/v1/instances/{name}``),
2. ``CreateLoadBalancer`` + ``AttachInstancesToLoadBalancer``,
3. ``CreateLoadBalancerTlsCertificate`` for ``localhost`` and a demo name; wait for ``ISSUED``,
4. ``AttachLoadBalancerTlsCertificate``: ACM creates the KMS grant, read back with ``ListGrants``,
5. ``UpdateLoadBalancerAttribute HealthCheckPath``.

Each step of the key flow is narrated in plain words through ``narrate`` (``print`` by default).
"""

from __future__ import annotations

import configparser
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError

from lbproxy.contract.vocabulary import ACM_KEY_ALIAS
from lbproxy.proxy.controllink import ControlClient, ControlError, Signer

ADMIN_PROFILE = "admin"
DEFAULT_DOMAINS = ("localhost", "demo.localhost")
GRANT_NAME = "IssuedThroughACM"
#: Lightsail's default instance port; instances registered with ``HOST:PORT`` use their own port.
INSTANCE_PORT = 80
POLL = 0.2

Narrate = Callable[[str], None]


class SetupError(Exception):
    """A step failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class SetupResult:
    load_balancer: str
    load_balancer_arn: str
    principal_arn: str
    certificate_name: str
    acm_certificate_arn: str
    key_arn: str
    grant_id: str
    domains: tuple[str, ...]


def read_profile(credentials_file: Path, profile: str = ADMIN_PROFILE) -> tuple[ReadOnlyCredentials, str]:
    """One profile of an AWS shared-credentials file (the one ``lbproxy control`` writes) and its region."""
    parser = configparser.ConfigParser()
    if not parser.read(credentials_file):
        raise SetupError(f"no credentials file at {credentials_file} (does the control plane use this data dir?)")
    if profile not in parser:
        raise SetupError(f"{credentials_file} has no [{profile}] profile")
    section = parser[profile]
    creds = ReadOnlyCredentials(section["aws_access_key_id"], section["aws_secret_access_key"], None)
    return creds, section.get("region", "us-east-1")


class AdminSession:
    """botocore clients and the extension client for the ``admin`` principal, against one control plane."""

    def __init__(self, control_url: str, credentials_file: Path, timeout: float = 10.0) -> None:
        self.control_url = control_url.rstrip("/")
        self.credentials, self.region = read_profile(credentials_file)
        self._session = botocore.session.get_session()
        self._config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2})
        self.extensions = ControlClient(self.control_url, Signer(self.credentials, self.region), timeout=timeout)

    def client(self, service: str) -> Any:
        return self._session.create_client(
            service,
            endpoint_url=self.control_url,
            region_name=self.region,
            aws_access_key_id=self.credentials.access_key,
            aws_secret_access_key=self.credentials.secret_key,
            config=self._config,
        )


def wait_for_control(control_url: str, credentials_file: Path, timeout: float = 30.0) -> None:
    """Until ``GET /healthz`` answers 200 and the credentials file exists (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(control_url.rstrip("/") + "/healthz", timeout=2) as resp:
                if resp.status == 200 and credentials_file.exists():
                    return
                last = f"HTTP {resp.status}" if resp.status != 200 else f"{credentials_file} missing"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(POLL)
    raise SetupError(f"the control plane at {control_url} did not answer within {timeout:.0f}s ({last})")


def find_grant(kms: Any, load_balancer_arn: str, acm_certificate_arn: str | None = None) -> dict[str, Any] | None:
    """The ``IssuedThroughACM`` grant that lets this load balancer decrypt (for this certificate), if any."""
    grants = kms.list_grants(KeyId=ACM_KEY_ALIAS)["Grants"]
    for g in grants:
        ctx = (g.get("Constraints") or {}).get("EncryptionContextEquals") or {}
        if g.get("Name") != GRANT_NAME or ctx.get("aws:lightsail:arn") != load_balancer_arn:
            continue
        if acm_certificate_arn is None or ctx.get("aws:acm:arn") == acm_certificate_arn:
            return dict(g)
    return None


def _json(value: Mapping[str, str]) -> str:
    return json.dumps(dict(value), sort_keys=True)


def _load_balancer(ls: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(ls.get_load_balancer(loadBalancerName=name)["loadBalancer"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NotFoundException":
            return None
        raise


def _certificate(ls: Any, lb_name: str, cert_name: str) -> dict[str, Any] | None:
    for cert in ls.get_load_balancer_tls_certificates(loadBalancerName=lb_name)["tlsCertificates"]:
        if cert["name"] == cert_name:
            return dict(cert)
    return None


def _acm_arn_for(acm: Any, serial: str) -> str:
    """The ACM certificate behind a Lightsail one: same serial number (Lightsail does not show the ARN)."""
    for summary in acm.list_certificates()["CertificateSummaryList"]:
        arn = summary["CertificateArn"]
        if acm.describe_certificate(CertificateArn=arn)["Certificate"].get("Serial") == serial:
            return str(arn)
    raise SetupError(f"no ACM certificate with serial {serial}")


def _wait_issued(ls: Any, lb_name: str, cert_name: str, timeout: float, narrate: Narrate) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    said_pending = False
    while True:
        cert = _certificate(ls, lb_name, cert_name)
        status = cert["status"] if cert else "MISSING"
        if cert is not None and status == "ISSUED":
            return cert
        if status != "PENDING_VALIDATION":
            raise SetupError(f"certificate {cert_name} is {status}, not ISSUED")
        if not said_pending:
            narrate("  pending validation (the local CA signs once the simulated DNS validation passes) ...")
            said_pending = True
        if time.monotonic() > deadline:
            raise SetupError(f"certificate {cert_name} still PENDING_VALIDATION after {timeout:.0f}s")
        time.sleep(POLL)


def set_up_load_balancer(
    control_url: str,
    credentials_file: Path,
    lb_name: str,
    instances: Mapping[str, str],
    domains: Sequence[str] = DEFAULT_DOMAINS,
    health_check_path: str = "/health",
    narrate: Narrate = print,
    timeout: float = 30.0,
) -> SetupResult:
    """Register ``instances`` (name -> ``HOST:PORT``), create ``lb_name`` with an HTTPS certificate for
    ``domains``, attach it, set the health check; narrate the key flow. Idempotent."""
    if not instances:
        raise SetupError("at least one instance is needed")
    if not domains:
        raise SetupError("at least one domain is needed")
    try:
        return _set_up(
            control_url, credentials_file, lb_name, instances, tuple(domains), health_check_path, narrate, timeout
        )
    except ClientError as exc:
        err = exc.response["Error"]
        raise SetupError(f"{exc.operation_name}: {err.get('Code')}: {err.get('Message')}") from None
    except ControlError as exc:
        raise SetupError(f"{exc.code}: {exc.message}") from None
    except BotoCoreError as exc:
        raise SetupError(str(exc)) from None


def _set_up(
    control_url: str,
    credentials_file: Path,
    lb_name: str,
    instances: Mapping[str, str],
    domains: tuple[str, ...],
    health_check_path: str,
    narrate: Narrate,
    timeout: float,
) -> SetupResult:
    session = AdminSession(control_url, credentials_file)
    ls, kms, acm = session.client("lightsail"), session.client("kms"), session.client("acm")
    cert_name = f"{lb_name}-cert"

    # 1. Instances (lbproxy extension: Lightsail instances are VMs; here they are addresses).
    for name, address in instances.items():
        session.extensions.call_json("PUT", f"/lbproxy/v1/instances/{name}", {"address": address})
    listed = ", ".join(f"{n} -> {a}" for n, a in instances.items())
    narrate(f"* instances registered: {listed}")

    # 2. The load balancer, and its own principal (the role its data plane authenticates as).
    lb = _load_balancer(ls, lb_name)
    if lb is None:
        ls.create_load_balancer(loadBalancerName=lb_name, instancePort=INSTANCE_PORT)
        lb = _load_balancer(ls, lb_name)
        assert lb is not None
        narrate(f"* load balancer {lb_name} created (CreateLoadBalancer): {lb['arn']}")
    else:
        narrate(f"* load balancer {lb_name} exists: reusing it ({lb['arn']})")
    attached = {h["instanceName"] for h in lb.get("instanceHealthSummary", [])}
    missing = [n for n in instances if n not in attached]
    if missing:
        ls.attach_instances_to_load_balancer(loadBalancerName=lb_name, instanceNames=missing)
        narrate(f"  instances attached (AttachInstancesToLoadBalancer): {', '.join(missing)}")

    # 3. The KMS key that will seal certificate keys.
    key = kms.describe_key(KeyId=ACM_KEY_ALIAS)["KeyMetadata"]
    narrate(
        f"* KMS key {ACM_KEY_ALIAS} ({key['KeyManager']}-managed, {key['Arn']}): created by the key service at "
        "first start; its key policy lets only ACM use it"
    )

    # 4. The certificate: ACM generates the key pair and seals the private key under alias/aws/acm.
    cert = _certificate(ls, lb_name, cert_name)
    if cert is None:
        ls.create_load_balancer_tls_certificate(
            loadBalancerName=lb_name,
            certificateName=cert_name,
            certificateDomainName=domains[0],
            certificateAlternativeNames=list(domains[1:]),
        )
        narrate(f"* certificate {cert_name} requested for {', '.join(domains)} (CreateLoadBalancerTlsCertificate)")
    else:
        names = ", ".join(cert.get("subjectAlternativeNames") or [])
        narrate(f"* certificate {cert_name} exists ({names}): reusing it")
        wanted = set(domains)
        if not wanted <= set(cert.get("subjectAlternativeNames") or []):
            narrate(f"  note: it does not cover {', '.join(sorted(wanted))}; delete it to request a new one")
    cert = _wait_issued(ls, lb_name, cert_name, timeout, narrate)
    acm_arn = _acm_arn_for(acm, cert["serial"])
    narrate(
        f"  ISSUED by the local CA: serial {cert['serial']}, {cert['keyAlgorithm']}, valid until {cert['notAfter']}"
    )
    narrate(
        f"  key sealed: ACM generated the private key, called GenerateDataKey on {ACM_KEY_ALIAS} ({key['KeyId']}) "
        f"with encryption context {_json({'aws:acm:arn': acm_arn})}, encrypted the key with AES-256-GCM and "
        "kept only ciphertexts: nobody can download it"
    )

    # 5. Attach: ACM creates the grant that lets exactly this load balancer decrypt exactly this key.
    grant = find_grant(kms, lb["arn"], acm_arn) if cert.get("isAttached") else None
    if grant is None:
        if cert.get("isAttached"):
            narrate("* the certificate is attached but its grant was revoked: attaching it again")
        ls.attach_load_balancer_tls_certificate(loadBalancerName=lb_name, certificateName=cert_name)
        grant = find_grant(kms, lb["arn"], acm_arn)
        if grant is None:
            raise SetupError(f"attached {cert_name}, but kms ListGrants shows no {GRANT_NAME} grant for {lb_name}")
        narrate(f"* certificate attached (AttachLoadBalancerTlsCertificate): ACM created KMS grant {grant['GrantId']}")
    else:
        narrate(f"* certificate attached already; its KMS grant {grant['GrantId']} is active")
    constraints = grant.get("Constraints") or {}
    narrate(f"  grant (read back with kms ListGrants on {ACM_KEY_ALIAS}):")
    narrate(f"    name               {grant['Name']}")
    narrate(f"    grantee            {grant['GranteePrincipal']}  (the load balancer's own principal)")
    narrate(f"    operations         {', '.join(grant['Operations'])}")
    for kind, ctx in constraints.items():
        narrate(f"    constraint         {kind} {_json(ctx)}")
    narrate(f"    retiring principal {grant.get('RetiringPrincipal', '-')}  (detaching the certificate retires it)")

    # 6. Health check path (an attribute; the check interval is the data plane's --health-check-interval).
    if lb.get("healthCheckPath") != health_check_path:
        ls.update_load_balancer_attribute(
            loadBalancerName=lb_name, attributeName="HealthCheckPath", attributeValue=health_check_path
        )
        narrate(f"* health check path set to {health_check_path} (UpdateLoadBalancerAttribute HealthCheckPath)")
    return SetupResult(
        load_balancer=lb_name,
        load_balancer_arn=lb["arn"],
        principal_arn=grant["GranteePrincipal"],
        certificate_name=cert_name,
        acm_certificate_arn=acm_arn,
        key_arn=key["Arn"],
        grant_id=grant["GrantId"],
        domains=tuple(cert.get("subjectAlternativeNames") or domains),
    )


def export_ca(data_dir: Path, narrate: Narrate = print) -> Path | None:
    """Write the local CA's root certificate to ``DATA_DIR/ca.pem`` (None when the CA lives elsewhere)."""
    from lbproxy.certs.ca import CAError, export_root

    try:
        pem = export_root(data_dir)
    except CAError as exc:
        narrate(f"* root CA not exported: {exc}")
        return None
    path = data_dir / "ca.pem"
    path.write_text(pem)
    narrate(f"* root CA of the local certificate authority exported to {path} (curl --cacert {path})")
    return path
