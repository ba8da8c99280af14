from datetime import timedelta

from headwater import (
    Avg,
    Count,
    CountDistinct,
    Entity,
    FeatureView,
    FileSource,
    Hopping,
    Max,
    PostgresSource,
    Sum,
    Tumbling,
)

user = Entity("user", join_keys=["user_id"])
orders = PostgresSource(
    "orders",
    connection="app_db",
    table="public.orders",
    timestamp_field="created_at",
    cursor_field="updated_at",
    primary_key=["order_id"],
)
clicks = FileSource("clicks", path="data/clicks/*.parquet", timestamp_field="event_timestamp")
profiles = FileSource(
    "profiles",
    path="data/profiles.csv",
    timestamp_field="updated_at",
    created_timestamp_field="ingested_at",
)

user_profile = FeatureView(
    "user_profile",
    entity=user,
    source=profiles,
    ttl=timedelta(days=365),
    features={"age": "age", "country": "upper(country)", "is_premium": "plan = 'premium'"},
)
user_orders_daily = FeatureView(
    "user_orders_daily",
    entity=user,
    source=orders,
    window=Tumbling("1d"),
    ttl=timedelta(days=2),
    features=[
        Sum("amount", name="amount_sum"),
        Count(name="order_count"),
        Avg("amount", name="amount_avg"),
        Max("amount", name="amount_max"),
    ],
)
user_clicks_1h = FeatureView(
    "user_clicks_1h",
    entity=user,
    source=clicks,
    window=Hopping(size="1h", every="5m"),
    features=[Count(name="clicks"), CountDistinct("page_id", name="unique_pages")],
)
