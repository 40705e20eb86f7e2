"""`task new-domain`: a working, tested domain in one command (see README, "Adding a domain")."""
