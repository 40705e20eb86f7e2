"""Shared abstractions every domain builds on. Pure business logic: no Litestar, no Prefect."""
