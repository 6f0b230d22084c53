"""Feast itself, as the reference for `cairn features` (run with Feast's own venv).

    python feast_reference.py reference REPO   generate data in REPO/data, apply the same
        definitions as REPO/features.yaml (written by this script) with Feast, write Feast's
        get_historical_features to REPO/feast_historical.parquet, materialize, and print the
        feature server's answers to REQUESTS as JSON
    python feast_reference.py remote REPO URL   Feast's SDK with `online_store: type: remote`
        pointed at URL: read online features through it, write a row through it, read it back
    python feast_reference.py compare FEAST.parquet CAIRN.parquet STATS.parquet   compare two
        training sets (the stats source explains Feast's tie breaks)

Data: 20 drivers with hourly stats over two days and gaps, rows that arrive late (created
hours after their event), duplicate event times told apart by their created time, a profile
view without ttl or created column, and entity rows at exact event times, exact ttl edges,
before any data and for a driver that has none.
"""
import json
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

BASE = datetime(2026, 11, 1, tzinfo=timezone.utc)
TTL = timedelta(hours=2)

FEATURES_YAML = """project: drivers
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, path: data/stats.parquet, timestamp_field: event_timestamp, created_timestamp_column: created}
  - {name: profile, path: data/profile.parquet, timestamp_field: event_timestamp}
feature_views:
  - name: driver_stats
    entities: [driver]
    ttl: 2h
    schema:
      - {name: conv_rate, dtype: Float32}
      - {name: trips, dtype: Int64}
      - {name: rating, dtype: Float64}
    source: stats
  - name: driver_profile
    entities: [driver]
    ttl: 0
    schema:
      - {name: city, dtype: String}
      - {name: vip, dtype: Bool}
    source: profile
feature_services:
  - {name: activity, features: ['driver_stats:conv_rate', 'driver_profile']}
"""

REQUESTS = [
    {"features": ["driver_stats:conv_rate", "driver_stats:trips", "driver_profile:city"],
     "entities": {"driver_id": [1001, 1002, 1019, 9999]}},
    {"features": ["driver_stats:rating", "driver_profile:vip"], "entities": {"driver_id": [1005]},
     "full_feature_names": True},
    {"feature_service": "activity", "entities": {"driver_id": [1003, 1004, 4242]}},
]


def generate(repo):
    rng = np.random.default_rng(7)
    rows = []
    for driver in range(1001, 1021):
        for hour in range(48):
            if rng.random() < 0.2:
                continue  # gaps
            event = BASE + timedelta(hours=hour, minutes=int(rng.integers(0, 60)))
            created = event + timedelta(minutes=int(rng.integers(0, 5)))
            if rng.random() < 0.1:
                created = event + timedelta(hours=int(rng.integers(3, 10)))  # arrives late
            rows.append((driver, event, created, rng.random(), int(rng.integers(0, 50)), float(rng.normal(4.5, 0.3))))
            if rng.random() < 0.1:  # the same event time again, created later, other values
                rows.append((driver, event, created + timedelta(minutes=7), rng.random(), int(rng.integers(0, 50)),
                             float(rng.normal(4.5, 0.3))))
    stats = pd.DataFrame(rows, columns=["driver_id", "event_timestamp", "created", "conv_rate", "trips", "rating"])
    stats["conv_rate"] = stats["conv_rate"].astype("float32")
    stats = stats.sample(frac=1.0, random_state=3).reset_index(drop=True)  # not in time order
    stats.loc[stats.index % 17 == 0, "rating"] = np.nan  # some missing values
    profile = pd.DataFrame({
        "driver_id": [d for d in range(1001, 1021) for _ in range(2)],
        "event_timestamp": [BASE + timedelta(hours=h) for _ in range(1001, 1021) for h in (0, 30)],
        "city": [c for d in range(20) for c in (f"city{d % 4}", f"city{(d + 1) % 4}")],
        "vip": [v for d in range(20) for v in (d % 3 == 0, d % 2 == 0)],
    })
    (repo / "data").mkdir(exist_ok=True)
    stats.to_parquet(repo / "data" / "stats.parquet", index=False)
    profile.to_parquet(repo / "data" / "profile.parquet", index=False)

    entity_rows = []
    for i in range(300):
        driver = int(rng.choice([*range(1001, 1021), 9999]))
        kind = i % 5
        if kind == 0 and len(stats):  # exactly at an event time of that driver
            own = stats[stats.driver_id == driver]
            ts = own.event_timestamp.iloc[int(rng.integers(0, len(own)))] if len(own) else BASE
        elif kind == 1:  # exactly one ttl after an event
            own = stats[stats.driver_id == driver]
            ts = (own.event_timestamp.iloc[int(rng.integers(0, len(own)))] + TTL) if len(own) else BASE
        elif kind == 2:  # before any data
            ts = BASE - timedelta(minutes=int(rng.integers(1, 120)))
        else:
            ts = BASE + timedelta(minutes=int(rng.integers(0, 52 * 60)))
        entity_rows.append((i, driver, ts))
    entities = pd.DataFrame(entity_rows, columns=["row_id", "driver_id", "event_timestamp"])
    entities.to_parquet(repo / "entities.parquet", index=False)
    return stats, profile, entities


def feast_objects(repo):
    """The definitions of FEATURES_YAML as Feast's objects."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Bool, Float32, Float64, Int64, String

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    stats = FileSource(name="stats", path=str(repo / "data" / "stats.parquet"), timestamp_field="event_timestamp",
                       created_timestamp_column="created")
    profile = FileSource(name="profile", path=str(repo / "data" / "profile.parquet"), timestamp_field="event_timestamp")
    stats_view = FeatureView(name="driver_stats", entities=[driver], ttl=TTL, source=stats, online=True,
                             schema=[Field(name="conv_rate", dtype=Float32), Field(name="trips", dtype=Int64),
                                     Field(name="rating", dtype=Float64)])
    profile_view = FeatureView(name="driver_profile", entities=[driver], ttl=timedelta(0), source=profile,
                               online=True, schema=[Field(name="city", dtype=String), Field(name="vip", dtype=Bool)])
    service = FeatureService(name="activity", features=[stats_view[["conv_rate"]], profile_view])
    return [driver, stats, profile, stats_view, profile_view, service]


def remote(repo, url):
    """Feast's own SDK with its remote online store pointed at URL (a Cairn feature server):
    online features read through it, then a row written through it and read back."""
    from feast import FeatureStore

    root = repo / "feast_remote"
    root.mkdir(exist_ok=True)
    (root / "feature_store.yaml").write_text(
        f"project: drivers\nregistry: {root / 'registry.db'}\nprovider: local\n"
        f"offline_store:\n  type: file\nonline_store:\n  type: remote\n  path: {url}\n"
        "entity_key_serialization_version: 3\n")
    store = FeatureStore(repo_path=str(root))
    store.apply(feast_objects(repo))
    features = ["driver_stats:conv_rate", "driver_stats:trips", "driver_profile:city", "driver_profile:vip"]
    rows = [{"driver_id": d} for d in (1001, 1002, 1019, 9999)]
    before = store.get_online_features(features=features, entity_rows=rows).to_dict()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    df = pd.DataFrame({"driver_id": [1010], "event_timestamp": [now], "created": [now],
                       "conv_rate": [0.75], "trips": [9], "rating": [4.5]})
    store.write_to_online_store("driver_stats", df)
    after = store.get_online_features(features=["driver_stats:conv_rate", "driver_stats:trips"],
                                      entity_rows=[{"driver_id": 1010}]).to_dict()
    print(json.dumps({"features": features, "entities": [r["driver_id"] for r in rows],
                      "before": before, "after": after}, default=str))


def reference(repo):
    from feast import FeatureStore

    (repo / "features.yaml").write_text(FEATURES_YAML)
    _, _, entities = generate(repo)
    (repo / "feast").mkdir(exist_ok=True)
    (repo / "feast" / "feature_store.yaml").write_text(
        f"project: drivers\nregistry: {repo / 'feast' / 'registry.db'}\nprovider: local\n"
        f"offline_store:\n  type: file\nonline_store:\n  type: sqlite\n  path: {repo / 'feast' / 'online.db'}\n"
        "entity_key_serialization_version: 3\n")
    store = FeatureStore(repo_path=str(repo / "feast"))
    store.apply(feast_objects(repo))

    features = ["driver_stats:conv_rate", "driver_stats:trips", "driver_stats:rating", "driver_profile:city",
                "driver_profile:vip"]
    historical = store.get_historical_features(entity_df=entities, features=features).to_df()
    historical.to_parquet(repo / "feast_historical.parquet", index=False)

    end = BASE + timedelta(hours=49)
    store.materialize(start_date=BASE - timedelta(days=1), end_date=end)
    import uvicorn
    from feast.feature_server import get_app

    port = 20000 + int(time.time() * 1000) % 20000
    server = uvicorn.Server(uvicorn.Config(get_app(store), host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    answers = []
    for body in REQUESTS:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            answers.append(json.loads(resp.read()))
    server.should_exit = True
    print(json.dumps({"requests": REQUESTS, "answers": answers, "materialize_end": end.isoformat(),
                      "materialize_start": (BASE - timedelta(days=1)).isoformat()}))


def compare(feast_path, cairn_path, stats_path):
    """Every row Feast returns must equal Cairn's row of the same row_id. Feast's file offline
    store (0.67) also drops entity rows, which Cairn keeps (one output row per entity row, as
    Feast's SQL offline stores answer): rows repeating the join key and time of another row
    (Cairn's values must equal that row's), and rows for which some view has rows of that
    entity but none in time (Cairn's values for that view must be missing). Any other
    difference is a problem."""
    feast = pd.read_parquet(feast_path).set_index("row_id").sort_index()
    cairn = pd.read_parquet(cairn_path).set_index("row_id").sort_index()
    problems = []
    if sorted(feast.columns) != sorted(cairn.columns):
        problems.append(f"columns differ: feast {sorted(feast.columns)} cairn {sorted(cairn.columns)}")
    features = [c for c in feast.columns if c not in ("driver_id", "event_timestamp")]

    def same(a, b):
        return (pd.isna(a) and pd.isna(b)) or a == b

    stats = pd.read_parquet(stats_path)
    stat_columns = ["conv_rate", "trips", "rating"]

    def tie_broken_by_created(f, k):
        """Feast's file store sorts by created, then (not stably) by event time, so among rows
        with the same event time it may keep any; the definition (and Cairn) keeps the one
        created last. True when that is the whole difference."""
        ts = pd.Timestamp(k.event_timestamp).tz_convert("UTC")
        own = stats[(stats.driver_id == k.driver_id) & (stats.event_timestamp <= ts)
                    & (stats.event_timestamp >= ts - TTL)]
        if own.empty:
            return False
        tied = own[own.event_timestamp == own.event_timestamp.max()]
        if len(tied) < 2:
            return False
        last = tied.sort_values("created").iloc[-1]

        def matches(row, values):
            return all(same(row[c], values[c]) for c in stat_columns)
        return matches(last, k) and any(matches(t, f) for _, t in tied.iterrows())

    tie_breaks = 0
    for row_id, f in feast.iterrows():
        k = cairn.loc[row_id]
        differing = []
        for c in feast.columns:
            a, b = f[c], k[c]
            if c == "event_timestamp":
                a, b = pd.Timestamp(a).tz_convert("UTC"), pd.Timestamp(b).tz_convert("UTC")
            if not same(a, b):
                differing.append(f"row_id {row_id} column {c}: feast {a!r} cairn {b!r}")
        if differing and all(d.split(" column ")[1].split(":")[0] in stat_columns for d in differing) \
                and tie_broken_by_created(f, k):
            tie_breaks += 1
        else:
            problems.extend(differing)
    kept = {(r.driver_id, pd.Timestamp(r.event_timestamp).tz_convert("UTC")): i for i, r in feast.iterrows()}
    duplicates = no_value = 0
    views = {"driver_stats": ["conv_rate", "trips", "rating"], "driver_profile": ["city", "vip"]}
    for row_id, k in cairn.iterrows():
        if row_id in feast.index:
            continue
        key = (k.driver_id, pd.Timestamp(k.event_timestamp).tz_convert("UTC"))
        if key in kept:
            duplicates += 1
            for c in features:
                if not same(k[c], cairn.loc[kept[key]][c]):
                    problems.append(f"row_id {row_id} repeats row {kept[key]} but {c} differs")
        elif any(k[cols].isna().all() for cols in views.values()):
            no_value += 1
        else:
            problems.append(f"row_id {row_id}: Feast dropped a row Cairn found every view's values for")
    print(json.dumps({"equal": not problems, "feast_rows": len(feast), "cairn_rows": len(cairn),
                      "dropped_by_feast_as_duplicates": duplicates,
                      "dropped_by_feast_without_a_value": no_value,
                      "feast_tie_breaks_not_by_created": tie_breaks, "problems": problems[:20]}))


if __name__ == "__main__":
    from pathlib import Path

    if sys.argv[1] == "reference":
        reference(Path(sys.argv[2]).resolve())
    elif sys.argv[1] == "remote":
        remote(Path(sys.argv[2]).resolve(), sys.argv[3])
    else:
        compare(sys.argv[2], sys.argv[3], sys.argv[4])
