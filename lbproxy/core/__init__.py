"""The control plane's state and bookkeeping, shared by every service.

- ``store``       one SQLite file, every change in a transaction; each service declares its own tables.
- ``clock``       domain time, injectable (``ManualClock`` in tests: no test sleeps for real).
- ``principals``  who can call: users and roles, ARNs, access keys, the shared-credentials file.
- ``events``      the ordered, resumable event stream (``GET /events``) the data planes follow.
- ``audit``       the audit trail (JSON lines in ``DATA_DIR/audit.jsonl``) and ``lbproxy audit``.
"""
