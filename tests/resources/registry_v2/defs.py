from headwater import Count, Entity, FeatureView, FileSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders", path="data/orders.parquet", timestamp_field="ts")
user_orders = FeatureView(
    "user_orders",
    entity=user,
    source=orders,
    window=Tumbling("1d"),
    features=[Sum("amount", name="amount_sum"), Count(name="orders")],
)
