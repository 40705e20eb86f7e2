"""Inbound webhook deliveries: recorded once, with what became of them; Clerk's applied by the
domains that registered their event types (`clerk_deliveries.py`)."""
