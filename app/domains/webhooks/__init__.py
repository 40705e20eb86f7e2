"""Inbound webhook deliveries: recorded once, with what became of them."""
