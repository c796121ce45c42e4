"""The AWS wire toolkit every service uses (what moto's ``core`` is to moto): nothing here knows KMS, ACM or
Lightsail.

- ``errors``    ``AwsError`` and the codes every AWS JSON service shares (one class per code, AWS's wording).
- ``protocol``  AWS JSON 1.1: the request context a handler gets, how results and errors are serialized.
- ``shapes``    request validation against botocore's own service models (types, required, lengths, enums).
- ``sigv4``     Signature Version 4 verification (botocore's signer, never hand-rolled): the signed headers
  that must be there, the clock skew, the head checked before any body is read.
- ``dispatch``  one operation run as AWS runs it (look up, validate, call, audit) and the one CloudTrail-style
  audit record.
"""
