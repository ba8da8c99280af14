"""The data and the eight checks of ``scripts/bench quality``, shared by every contender.

Plain values only (no imports beyond the standard library): the worker imports this module in
headwater's virtualenv and in the peers' one, so each tool declares the same checks from the
same numbers.
"""

from __future__ import annotations

DATA_VERSION = 1
"""Bump when the generated data changes, so that old Parquet files are not reused."""

T_END_US = 1_795_305_600_000_000
"""2026-11-22 00:00:00 UTC in epoch microseconds: the newest possible ``created_at``."""
SPAN_MS = 30 * 86_400_000
"""``created_at`` is spread over the 30 days before ``T_END_US``."""
NOW_MS = T_END_US // 1000 + 3 * 3_600_000
"""The "now" every tool judges freshness at: three hours after the newest event."""
MAX_AGE_MS = 2 * 3_600_000
"""freshness(created_at, 2h): fails, as the newest event is at least three hours old."""

STATUSES = ("new", "paid", "shipped", "delivered", "cancelled", "refunded")
EMAIL_PATTERN = r"^[a-z0-9._+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$"
"""The same in RE2 (DuckDB, pyarrow), Python's ``re`` and Rust's ``regex`` (polars): no
look-arounds, no back-references, ASCII only, and no value contains a newline."""
AMOUNT_MIN = 0
AMOUNT_MAX = 100_000
COUNTRY_MAX_LENGTH = 2
ROW_COUNT_MIN = 1
ROW_COUNT_MAX = 50_000_000
"""row_count(1, 50M): passes at every size the benchmark runs (up to 50M rows)."""

CHECKS = (
    # key, the check as headwater names it, the column, row-level?
    ("not_null", "not_null(user_id)", "user_id", True),
    ("unique", "unique(order_id)", "order_id", True),
    ("between", "between(amount)", "amount", True),
    ("in_set", "in_set(status)", "status", True),
    ("matches", "matches(email)", "email", True),
    ("max_length", "max_length(country)", "country", True),
    ("row_count", "row_count", None, False),
    ("freshness", "freshness", "created_at", False),
)
KEYS = tuple(key for key, *_rest in CHECKS)
ROW_LEVEL = tuple(key for key, _name, _column, row in CHECKS if row)
COLUMN_OF = {key: column for key, _name, column, _row in CHECKS}

GENERATE = """
SELECT
    CAST(CASE WHEN i % 1000 = 999 THEN i ELSE i + 1 END AS BIGINT) AS order_id,
    CAST(CASE WHEN i % 211 = 0 THEN NULL ELSE (i * 7919) % 1000003 END AS BIGINT) AS user_id,
    CAST(CASE WHEN i % 503 = 0 THEN NULL
              WHEN i % 997 = 0 THEN -((i * 48271) % 10000000) / 100.0 - 1
              WHEN i % 1009 = 0 THEN 1e9 + i % 1000
              ELSE ((i * 48271) % 10000000) / 100.0 END AS DOUBLE) AS amount,
    CASE WHEN i % 401 = 0 THEN NULL
         WHEN i % 1013 = 0 THEN (['unknown', 'PAID', 'returned'])[1 + i % 3]
         ELSE (['new', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded'])[1 + i % 6]
    END AS status,
    CASE WHEN i % 307 = 0 THEN NULL
         WHEN i % 499 = 0 THEN ([
             'user' || i || '.example.com',
             'user' || i || '@@example.com',
             'user ' || i || '@example.com',
             'User' || i || '@Example.com'])[1 + i % 4]
         ELSE 'user' || ((i * 7919) % 1000003) || '@' || ([
             'example.com', 'mail.example.org', 'shop.test', 'corp.example.co.uk',
             'post.example.net'])[1 + i % 5]
    END AS email,
    CASE WHEN i % 613 = 0 THEN NULL
         WHEN i % 2003 = 0 THEN (['USA', 'GER', 'FRA'])[1 + i % 3]
         ELSE (['US', 'DE', 'FR', 'GB', 'NL', 'ES', 'IT', 'SE', 'PL', 'JP'])[1 + i % 10]
    END AS country,
    CASE WHEN i % 1201 = 0 THEN NULL
         ELSE CAST(make_timestamp({t_end_us} - ((i * 7919) % {span_ms}) * 1000 - i % 1000)
                   AS TIMESTAMPTZ)
    END AS created_at
FROM range({rows}) AS t(i)
"""
"""The table: deterministic arithmetic on the row number, so the first N rows of a bigger
table are the table of N rows. Failures planted: duplicated ``order_id`` (2 rows in 1,000),
null ``user_id`` (1 in 211), ``amount`` below 0 (1 in 997) or above 100,000 (1 in 1,009),
``status`` outside the set (1 in 1,013), ``email`` not matching (1 in 499), ``country`` longer
than 2 (1 in 2,003); nulls in every column but ``order_id``."""
