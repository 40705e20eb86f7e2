"""The Prefect adapter: flows and tasks that call the same domain services as the API.

Nothing under app/api imports this package (Prefect costs ~1.5 s to import).
"""
