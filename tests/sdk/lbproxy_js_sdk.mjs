// lbproxy driven by the AWS SDK for JavaScript v3 (@aws-sdk/client-lightsail, client-kms, client-acm), a client
// nobody here wrote: the Terraform-style flow over Lightsail (write, poll GetOperation until Succeeded, read the
// fields an infrastructure tool reads), a few KMS and ACM calls, and the SDK's own error classes.
//
// Run by tests/sdk/test_js_sdk.py against a real control plane:
//   LBPROXY_ENDPOINT=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... node lbproxy_js_sdk.mjs
// Prints one JSON line (what it saw) and exits 0, or prints the failure and exits 1.

import {
  AttachInstancesToLoadBalancerCommand,
  AttachLoadBalancerTlsCertificateCommand,
  CreateLoadBalancerCommand,
  CreateLoadBalancerTlsCertificateCommand,
  DeleteLoadBalancerCommand,
  GetLoadBalancerCommand,
  GetLoadBalancersCommand,
  GetLoadBalancerTlsCertificatesCommand,
  GetLoadBalancerTlsPoliciesCommand,
  GetOperationCommand,
  GetOperationsForResourceCommand,
  InvalidInputException,
  LightsailClient,
  LightsailServiceException,
  NotFoundException,
  SetIpAddressTypeCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateLoadBalancerAttributeCommand,
} from "@aws-sdk/client-lightsail";
import { DescribeKeyCommand, KMSClient, ListKeysCommand } from "@aws-sdk/client-kms";
import { ACMClient, DescribeCertificateCommand, ListCertificatesCommand } from "@aws-sdk/client-acm";

const endpoint = process.env.LBPROXY_ENDPOINT;
const config = {
  endpoint,
  region: process.env.AWS_REGION || "us-east-1",
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
  },
  maxAttempts: 1,
};
const lightsail = new LightsailClient(config);
const kms = new KMSClient(config);
const acm = new ACMClient(config);
const LB = "js-sdk-lb";
const CERT = "js-sdk-cert";
const seen = { polls: [], errors: {} };

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Terraform's expandOperations + waitOperation: operations[0] polled until Completed/Succeeded.
async function waitFor(answer, what) {
  check(Array.isArray(answer.operations) && answer.operations.length > 0, `${what} answered operations`);
  const id = answer.operations[0].id;
  const deadline = Date.now() + 20000;
  for (;;) {
    const { operation } = await lightsail.send(new GetOperationCommand({ operationId: id }));
    seen.polls.push(`${what}:${operation.status}`);
    if (operation.status === "Succeeded" || operation.status === "Completed") return operation;
    check(operation.status === "Started", `${what} is Started or Succeeded, not ${operation.status}`);
    check(Date.now() < deadline, `${what} finished within 20 s`);
    await sleep(100);
  }
}

async function expectError(promise, ErrorClass, name, what) {
  try {
    await promise;
  } catch (err) {
    check(err instanceof ErrorClass, `${what}: ${err.name} is an instance of ${ErrorClass.name}`);
    check(err instanceof LightsailServiceException || ErrorClass !== NotFoundException, `${what}: a service error`);
    check(err.name === name, `${what}: err.name ${err.name} === ${name}`);
    seen.errors[what] = { name: err.name, code: err.code, status: err.$metadata.httpStatusCode, message: err.message };
    return err;
  }
  throw new Error(`${what}: no error`);
}

async function main() {
  // KMS and ACM calls that exist today.
  const keys = await kms.send(new ListKeysCommand({}));
  const acmKey = (await kms.send(new DescribeKeyCommand({ KeyId: "alias/aws/acm" }))).KeyMetadata;
  check(acmKey.KeyManager === "AWS" && keys.Keys.some((k) => k.KeyId === acmKey.KeyId), "alias/aws/acm is listed");

  // aws_lightsail_lb: create, wait, read what Terraform reads.
  const created = await lightsail.send(
    new CreateLoadBalancerCommand({
      loadBalancerName: LB,
      instancePort: 80,
      tags: [{ key: "env", value: "js" }, { key: "keyonly" }],
    }),
  );
  check(created.operations[0].status === "Started", "a new load balancer is Started");
  const provisioning = (await lightsail.send(new GetLoadBalancerCommand({ loadBalancerName: LB }))).loadBalancer;
  check(provisioning.state === "provisioning", `provisioning before active (${provisioning.state})`);
  await waitFor(created, "CreateLoadBalancer");
  let lb = (await lightsail.send(new GetLoadBalancerCommand({ loadBalancerName: LB }))).loadBalancer;
  check(lb.state === "active", "active once the operation succeeded");
  check(lb.createdAt instanceof Date && !Number.isNaN(lb.createdAt.getTime()), "createdAt is a date");
  check(lb.healthCheckPath === "/" && lb.ipAddressType === "dualstack", "Terraform's schema defaults");
  check(lb.httpsRedirectionEnabled === false, "httpsRedirectionEnabled is a boolean");
  check(["true", "false"].includes(lb.configurationOptions.SessionStickinessEnabled), "stickiness parses");
  check(Number.isInteger(Number(lb.configurationOptions.SessionStickiness_LB_CookieDurationSeconds)), "cookie");
  check(JSON.stringify(lb.tags) === JSON.stringify([{ key: "env", value: "js" }, { key: "keyonly", value: "" }]), "tags");

  // aws_lightsail_lb_attachment, aws_lightsail_lb_stickiness_policy.
  await waitFor(
    await lightsail.send(new AttachInstancesToLoadBalancerCommand({ loadBalancerName: LB, instanceNames: ["web-1"] })),
    "AttachInstancesToLoadBalancer",
  );
  lb = (await lightsail.send(new GetLoadBalancerCommand({ loadBalancerName: LB }))).loadBalancer;
  check(lb.instanceHealthSummary.some((h) => h.instanceName === "web-1"), "web-1 is attached");
  for (const [attributeName, attributeValue] of [
    ["SessionStickinessEnabled", "true"],
    ["SessionStickiness_LB_CookieDurationSeconds", "600"],
  ]) {
    await waitFor(
      await lightsail.send(new UpdateLoadBalancerAttributeCommand({ loadBalancerName: LB, attributeName, attributeValue })),
      attributeName,
    );
  }
  lb = (await lightsail.send(new GetLoadBalancerCommand({ loadBalancerName: LB }))).loadBalancer;
  check(lb.configurationOptions.SessionStickiness_LB_CookieDurationSeconds === "600", "cookie duration set");

  // Tags by name, as Terraform's updateTags: UntagResource, then TagResource.
  await lightsail.send(new UntagResourceCommand({ resourceName: LB, tagKeys: ["keyonly"] }));
  await lightsail.send(new TagResourceCommand({ resourceName: LB, tags: [{ key: "team", value: "web" }] }));
  lb = (await lightsail.send(new GetLoadBalancerCommand({ loadBalancerName: LB }))).loadBalancer;
  check(lb.tags.map((t) => t.key).join(",") === "env,team", `tags updated (${JSON.stringify(lb.tags)})`);

  // aws_lightsail_lb_certificate and its attachment.
  await waitFor(
    await lightsail.send(
      new CreateLoadBalancerTlsCertificateCommand({
        loadBalancerName: LB,
        certificateName: CERT,
        certificateDomainName: "js.example.com",
        certificateAlternativeNames: ["www.js.example.com"],
      }),
    ),
    "CreateLoadBalancerTlsCertificate",
  );
  let cert;
  const issuedBy = Date.now() + 20000;
  for (;;) {
    const certs = (await lightsail.send(new GetLoadBalancerTlsCertificatesCommand({ loadBalancerName: LB })))
      .tlsCertificates;
    cert = certs.find((c) => c.name === CERT);
    if (cert.status === "ISSUED") break;
    check(cert.status === "PENDING_VALIDATION" && Date.now() < issuedBy, `pending, then issued (${cert.status})`);
    await sleep(100);
  }
  check(cert.subjectAlternativeNames.includes("js.example.com"), "the SANs list the primary domain");
  check(cert.createdAt instanceof Date, "the certificate's createdAt is a date");
  await expectError(
    lightsail.send(new TagResourceCommand({ resourceName: CERT, tags: [{ key: "k", value: "v" }] })),
    InvalidInputException,
    "InvalidInputException",
    "TagResource on a certificate",
  );
  await waitFor(
    await lightsail.send(new AttachLoadBalancerTlsCertificateCommand({ loadBalancerName: LB, certificateName: CERT })),
    "AttachLoadBalancerTlsCertificate",
  );
  const attached = (await lightsail.send(new GetLoadBalancerTlsCertificatesCommand({ loadBalancerName: LB })))
    .tlsCertificates.find((c) => c.name === CERT);
  check(attached.isAttached === true, "the certificate is attached");
  const acmList = await acm.send(new ListCertificatesCommand({}));
  const acmArns = acmList.CertificateSummaryList.map((c) => c.CertificateArn);
  const acmCerts = await Promise.all(
    acmArns.map((arn) => acm.send(new DescribeCertificateCommand({ CertificateArn: arn }))),
  );
  check(acmCerts.some((c) => c.Certificate.DomainName === "js.example.com"), "ACM lists the certificate");

  // aws_lightsail_lb_https_redirection_policy.
  await waitFor(
    await lightsail.send(
      new UpdateLoadBalancerAttributeCommand({
        loadBalancerName: LB,
        attributeName: "HttpsRedirectionEnabled",
        attributeValue: "true",
      }),
    ),
    "HttpsRedirectionEnabled",
  );
  lb = (await lightsail.send(new GetLoadBalancerCommand({ loadBalancerName: LB }))).loadBalancer;
  check(lb.httpsRedirectionEnabled === true && lb.protocol === "HTTP_HTTPS", "HTTPS with redirection");

  // Dual-stack, policies, the operation log, pages.
  await waitFor(
    await lightsail.send(
      new SetIpAddressTypeCommand({ resourceType: "LoadBalancer", resourceName: LB, ipAddressType: "ipv4" }),
    ),
    "SetIpAddressType",
  );
  lb = (await lightsail.send(new GetLoadBalancerCommand({ loadBalancerName: LB }))).loadBalancer;
  check(lb.ipAddressType === "ipv4", "ipAddressType set");
  const policies = (await lightsail.send(new GetLoadBalancerTlsPoliciesCommand({}))).tlsPolicies;
  check(policies.filter((p) => p.isDefault).map((p) => p.name).join() === "TLS-2016-08", "the default policy");
  const log = (await lightsail.send(new GetOperationsForResourceCommand({ resourceName: LB }))).operations;
  check(log[log.length - 1].operationType === "CreateLoadBalancer", "the log ends with the creation (newest first)");
  const names = [];
  let pageToken;
  do {
    const page = await lightsail.send(new GetLoadBalancersCommand({ pageToken }));
    names.push(...page.loadBalancers.map((l) => l.name));
    pageToken = page.nextPageToken;
  } while (pageToken);
  check(names.includes(LB), "GetLoadBalancers lists it");

  // Delete; then the SDK classifies a missing load balancer as NotFoundException.
  await waitFor(await lightsail.send(new DeleteLoadBalancerCommand({ loadBalancerName: LB })), "DeleteLoadBalancer");
  await expectError(
    lightsail.send(new GetLoadBalancerCommand({ loadBalancerName: LB })),
    NotFoundException,
    "NotFoundException",
    "GetLoadBalancer after DeleteLoadBalancer",
  );
  await expectError(
    lightsail.send(new GetOperationCommand({ operationId: "00000000-0000-0000-0000-000000000000" })),
    NotFoundException,
    "NotFoundException",
    "GetOperation of an unknown id",
  );
  const dropped = await expectError(
    lightsail.send(new DeleteLoadBalancerCommand({ loadBalancerName: LB })),
    NotFoundException,
    "NotFoundException",
    "DeleteLoadBalancer again",
  );
  check(dropped.code === "NotFoundException" && dropped.$metadata.httpStatusCode === 400, "its code and status");

  return {
    kmsKeys: keys.Keys.length,
    acmKey: acmKey.KeyManager,
    polls: seen.polls,
    errors: seen.errors,
    ipAddressType: lb.ipAddressType,
    loadBalancers: names,
  };
}

main().then(
  (summary) => {
    console.log(JSON.stringify(summary));
  },
  (err) => {
    console.error(`FAILED: ${err.name}: ${err.message}`);
    if (err.$response?.body) console.error(String(err.$response.body));
    console.error(JSON.stringify(seen));
    process.exit(1);
  },
);
