"""jobs keep their request's trace context

Revision ID: 0c685dd0a948
Revises: 5ad080c4fcd3
Create Date: 2026-12-03 17:34:32.925461
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0c685dd0a948"
down_revision: str | Sequence[str] | None = "5ad080c4fcd3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_context", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("trace_context")
