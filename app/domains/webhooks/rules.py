"""Rules of the webhooks domain: who sees the record of deliveries."""

from app.domains.base.policies import AdminsOnly

# Deliveries carry other people's data: admins and the system only (a verified delivery is recorded
# by a service acting as the system).
webhook_events_policy = AdminsOnly()
