"""Idempotency keys: a client's retry of a creating request (same key, same request) gets the
response of the first one instead of creating again. The HTTP side is `app/api/idempotency.py`."""
