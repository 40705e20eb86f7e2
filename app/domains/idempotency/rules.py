"""Rules of the idempotency domain: a key is its user's (admins and the system purge them)."""

from app.domains.base.policies import OwnedBy

idempotency_keys_policy = OwnedBy("user_id")
