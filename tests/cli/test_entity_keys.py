"""``headwater get --entity``: values of the key's declared type, or one line naming it."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import Template, fails, headwater, ok, template  # noqa: F401  # fixture

FEATURE = "user_events_daily:events"


def test_a_text_value_of_an_integer_key_is_converted(template: Template) -> None:  # noqa: F811
    text = ok(headwater("get", FEATURE, "-e", "user_id=1", "--json", "--repo", template.root))
    assert json.loads(text) == {"user_id": [1], "events": [2]}


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("user_id=abc", "'abc'"),
        ("user_id=1.5", "'1.5'"),
        ("user_id=", "''"),
        ("user_id=99999999999999999999", "out of range: int64 holds"),
    ],
)
def test_a_value_that_is_not_of_the_key_type_is_refused(
    template: Template,  # noqa: F811
    spec: str,
    named: str,
) -> None:
    line = fails(headwater("get", FEATURE, "--entity", spec, "--repo", template.root))
    assert "entity key 'user_id' of view 'user_events_daily' is an integer (int64)" in line
    assert named in line


def test_a_key_given_twice_is_refused(template: Template) -> None:  # noqa: F811
    line = fails(headwater("get", FEATURE, "-e", "user_id=1,user_id=2", "--repo", template.root))
    assert "--entity 'user_id=1,user_id=2' gives key 'user_id' twice" in line


def test_an_unknown_key_is_refused(template: Template) -> None:  # noqa: F811
    line = fails(headwater("get", FEATURE, "-e", "user_id=1,usr_id=2", "--repo", template.root))
    assert "entity key 'usr_id' is not a join key" in line
    assert "fix: use user_id" in line
