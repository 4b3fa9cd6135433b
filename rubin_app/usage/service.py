"""What usage the accounting shows: per day, per model or per API key, for one user (or, for an admin, all)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Select, case, func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.core.clock import utcnow
from rubin_app.usage.models import UsageRecord

Grouping = Literal["day", "model", "key", "source", "user"]
MAX_DAYS = 366


async def summary(
    *, session: AsyncSession, user_id: int | None, days: int = 30, by: Grouping = "day"
) -> list[dict[str, Any]]:
    """Requests, tokens, cache hits, failures and mean time to first token per group, newest/biggest first.

    `user_id=None` sums every user's usage: ADMIN ONLY (the caller checks the role)."""
    days = max(1, min(days, MAX_DAYS))
    group = {
        "day": func.date(UsageRecord.created_at),
        "model": col(UsageRecord.model),
        "key": col(UsageRecord.api_key_id),
        "source": col(UsageRecord.source),
        "user": col(UsageRecord.user_id),
    }[by]
    stmt: Select[Any] = (
        select(
            group.label("group"),
            func.count().label("requests"),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(case((col(UsageRecord.cached), 1), else_=0)), 0).label("cached"),
            func.coalesce(func.sum(case((col(UsageRecord.status) == "error", 1), else_=0)), 0).label("failed"),
            func.avg(UsageRecord.ttft_ms).label("ttft_ms"),
        )
        .where(col(UsageRecord.created_at) >= utcnow() - timedelta(days=days))
        .group_by(group)
    )
    if user_id is not None:
        stmt = stmt.where(col(UsageRecord.user_id) == user_id)
    rows = (await session.exec(stmt)).all()  # type: ignore[call-overload]  # a core select of many columns
    result = [
        {
            "group": str(r.group) if r.group is not None else None,
            "requests": int(r.requests),
            "prompt_tokens": int(r.prompt_tokens),
            "completion_tokens": int(r.completion_tokens),
            "total_tokens": int(r.prompt_tokens) + int(r.completion_tokens),
            "cached": int(r.cached),
            "failed": int(r.failed),
            "mean_ttft_ms": round(float(r.ttft_ms), 1) if r.ttft_ms is not None else None,
        }
        for r in rows
    ]
    if by == "day":
        return sorted(result, key=lambda r: r["group"] or "", reverse=True)
    return sorted(result, key=lambda r: (-r["total_tokens"], -r["requests"]))
