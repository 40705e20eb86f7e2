"""Large work in batches: one unit of work (one transaction) per batch, so memory stays flat and
locks stay short whatever the table's size."""

from collections.abc import Callable

from prefect import get_run_logger

from app.domains.base.unit_of_work import UnitOfWork
from app.workers.runtime import unit_of_work


def in_batches(what: str, batch: Callable[[UnitOfWork], int], batch_size: int) -> int:
    """Run `batch` in a new unit of work until it handles fewer than `batch_size` rows; the total."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")  # or the loop would never end
    total = 0
    while True:
        with unit_of_work() as uow:
            done = batch(uow)
        total += done
        if done:
            get_run_logger().info("%s: %d so far", what, total)
        if done < batch_size:
            return total
