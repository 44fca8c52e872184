"""A missing service fails the test on CI and skips it elsewhere, saying what is missing."""

import pytest
from unavailable import unavailable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_service_fails_on_ci_and_skips_elsewhere(monkeypatch, ci: str, outcome: type) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="PostgreSQL is not reachable"):
        unavailable("PostgreSQL is not reachable on 127.0.0.1:5432")
