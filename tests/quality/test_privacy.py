"""Values a view hashes, masks or drops never leave it raw: not in the quarantine table's files
(Delta's ``_delta_log`` statistics included), not in the registry's check results, not in
``headwater quality`` (and ``--json``), not in the warning logs. The tests read the bytes."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from headwater import FeatureStore
from headwater.quality.quarantine import read_quarantine
from tests.helpers import write_project

EMAIL = "jane.doe@example.org"
PHONE = "+44 20 7946 0958"
SSN = "078-05-1120"
SALT = "a-long-random-salt"
RAW = [EMAIL, PHONE, SSN, "bob.roe@example.org"]
DEFINITIONS = """
    from headwater import Entity, FeatureView, FileSource, checks, transforms

    user = Entity("user", join_keys=["user_id"])
    signups = FileSource(
        "signups",
        path="data/signups.parquet",
        timestamp_field="ts",
        checks=[
            checks.not_null("amount", severity="quarantine"),
            checks.matches("mail", r"^[a-z]+@", severity="warn"),
            checks.max_length("tel", 5, severity="warn"),
            checks.in_set("ssn", ["none"], severity="warn"),
        ],
    )
    profile = FeatureView(
        "profile",
        entity=user,
        source=signups,
        transforms=[
            transforms.rename({"mail": "email"}),
            transforms.hash("email", salt_env="HW_TEST_SALT"),
            transforms.mask("tel", keep_last=4),
            transforms.drop("ssn"),
        ],
        features={"email": "email", "tel": "tel", "amount": "amount"},
    )
"""


def _source() -> pa.Table:
    now = datetime.now(UTC).replace(microsecond=0)
    return pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([now - timedelta(hours=2), now - timedelta(hours=1)]),
            # user 1 is quarantined (no amount), and its mail fails the warn check
            "mail": [EMAIL, "bob.roe@example.org"],
            "tel": [PHONE, PHONE],
            "ssn": [SSN, SSN],
            "amount": pa.array([None, 5.0], pa.float64()),
        }
    )


def _headwater(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HW_TEST_SALT": SALT,
        "COLUMNS": "200",
        "HEADWATER_LOG_LEVEL": "WARNING",
        "HEADWATER_LOG_FORMAT": "json",
    }
    script = Path(sys.executable).parent / "headwater"
    return subprocess.run(
        [str(script), *map(str, args)], env=env, capture_output=True, text=True, check=False
    )


def _bytes_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def _raw_found(data: bytes) -> list[str]:
    return [value for value in RAW if value.encode() in data]


@pytest.mark.parametrize("offline", ["delta", "parquet"])
def test_private_values_stay_out_of_quarantine_registry_cli_and_logs(
    tmp_path: Path, offline: str
) -> None:
    root = write_project(
        tmp_path / "p", DEFINITIONS, offline=offline, data={"data/signups.parquet": _source()}
    )
    outputs = []
    for command in (["apply"], ["run"], ["quality"], ["quality", "--json"]):
        result = _headwater(*command, "--repo", root)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "1 quarantined" in outputs[1]
    assert "warned" in outputs[2]  # the warn checks did fail and are shown

    # The CLI's output and the run's warning logs name the checks but no raw value.
    assert '"check": "matches(mail)"' in outputs[1]  # the warning was logged
    assert _raw_found("\n".join(outputs).encode()) == []

    # The quarantine table's files, Delta's log with its column statistics included.
    quarantine = root / "data" / "offline" / "profile__quarantine"
    assert quarantine.exists()
    if offline == "delta":
        assert list((quarantine / "_delta_log").glob("*.json"))
    assert _raw_found(_bytes_under(quarantine)) == []

    # Its rows: the email hashed as the view hashes it, the phone masked, no ssn column.
    os.environ["HW_TEST_SALT"] = SALT
    try:
        with FeatureStore(root) as store:
            rows = read_quarantine(store.offline, "profile")
            assert rows is not None
            row = rows.to_pylist()[0]
            stored = store.offline.dataset("profile").to_table().to_pylist()
    finally:
        del os.environ["HW_TEST_SALT"]
    digest = hashlib.sha256((SALT + EMAIL).encode()).hexdigest()
    assert row["mail"] == digest
    assert row["tel"] == "*" * (len(PHONE) - 4) + PHONE[-4:]
    assert "ssn" not in rows.column_names
    assert row["_check"]
    assert stored[0]["email"] == hashlib.sha256((SALT + "bob.roe@example.org").encode()).hexdigest()

    # The registry: check results (samples and messages) hold no raw value.
    registry = root / ".headwater" / "registry.db"
    with sqlite3.connect(registry) as con:
        results = con.execute("SELECT message, sample FROM check_results").fetchall()
    assert any(digest in (sample or "") for _, sample in results), results
    assert any("<dropped>" in (sample or "") for _, sample in results), results
    assert _raw_found(json.dumps(results).encode()) == []
    assert _raw_found(registry.read_bytes()) == []
