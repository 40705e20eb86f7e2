"""`python -m bench.maintenance`: the maintenance flow's throughput over 100 k expired API keys.

On BENCH_DATABASE_URL (wiped, like `task bench`): one user with BENCH_KEYS (100 000) keys that expired
a minute ago, bulk-inserted; then one real run of the `maintenance` flow (Prefect, ephemeral API
unless PREFECT_API_URL is set) in this process, WORKER_BATCH_SIZE keys per transaction. Prints
rows/s and this process's peak memory before and after the run (memory must not grow with the rows).
"""

import os
import resource
import time

from sqlalchemy import create_engine, text

from bench.data import reset_schema
from bench.run import DATABASE_URL

KEYS = int(os.environ.get("BENCH_KEYS", "100000"))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    env = {**os.environ, "DATABASE_URL": DATABASE_URL}
    engine = create_engine(DATABASE_URL)
    reset_schema(engine, env)
    with engine.begin() as connection:
        user_id = connection.execute(
            text(
                "INSERT INTO users (id, created_at, updated_at, email, role, is_active)"
                " VALUES (gen_random_uuid(), now(), now(), 'keys@bench.example.com', 'member', true) RETURNING id"
            )
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO api_keys (id, created_at, updated_at, name, user_id, prefix, key_hash, scopes, expires_at)"
                " SELECT gen_random_uuid(), now(), now(), 'bulk', CAST(:user_id AS uuid), 'sk_bulk' || n, 'x', '[]',"
                " now() - interval '1 minute' FROM generate_series(1, :keys) AS n"
            ),
            {"user_id": str(user_id), "keys": KEYS},
        )
    os.environ["DATABASE_URL"] = DATABASE_URL
    from app.workers.flows.maintenance import maintenance  # noqa: PLC0415 (after DATABASE_URL is set)

    maintenance(batch_size=10)  # warm-up: the Prefect API and the imports, on a small batch
    with engine.begin() as connection:
        connection.execute(text("UPDATE api_keys SET revoked_at = NULL"))
    before = peak_rss_mib()
    started = time.perf_counter()
    counts = maintenance()
    elapsed = time.perf_counter() - started
    revoked = counts["api_keys_revoked"]
    print(f"{revoked} keys revoked in {elapsed:.1f} s: {revoked / elapsed:.0f} rows/s")
    print(f"peak memory of this process: {before:.0f} MiB before the run, {peak_rss_mib():.0f} MiB after")


if __name__ == "__main__":
    main()
