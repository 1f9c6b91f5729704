"""The prediction log, outcomes and sales feedback.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(200)),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("grade", sa.String(8), nullable=False),
        sa.Column("raw_score", sa.Float, nullable=False),
        sa.Column("factors", sa.JSON, nullable=False),
        sa.Column("top_factor", sa.String(32)),
        sa.Column("top_reason", sa.String(400)),
        sa.Column("lead", sa.JSON, nullable=False),
        sa.Column("explore", sa.Boolean, nullable=False),
    )
    op.create_index("ix_predictions_lead_id", "predictions", ["lead_id"])
    op.create_index("ix_predictions_scored_at", "predictions", ["scored_at"])
    op.create_table(
        "outcomes",
        sa.Column("lead_id", sa.String(200), primary_key=True),
        sa.Column("converted", sa.Boolean, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("factor", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_lead_id", "feedback", ["lead_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("outcomes")
    op.drop_table("predictions")
