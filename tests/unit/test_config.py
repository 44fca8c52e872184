from pathlib import Path

import pytest

from plantlake.config import ConfigError, load_config, parse_config, substitute_env

pytestmark = pytest.mark.unit

MINIMAL = """
lake: {root: lake}
sources:
  erp:
    - name: erp
      url: sqlite:///erp.sqlite
      tables: [{name: orders, primary_key: [id], cursor: updated_at}]
"""


def test_environment_variables_fill_secrets_and_defaults_nest() -> None:
    text = "url: postgresql://erp:${ERP_PASSWORD}@${HOST:-db:${PORT:-5432}}/erp"
    assert substitute_env(text, {"ERP_PASSWORD": "s3cret"}) == "url: postgresql://erp:s3cret@db:5432/erp"
    assert substitute_env(text, {"ERP_PASSWORD": "x", "HOST": "erp.local"}) == "url: postgresql://erp:x@erp.local/erp"


def test_missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="ERP_PASSWORD is not set"):
        substitute_env("password: ${ERP_PASSWORD}", {})


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path)
    assert config.lake.root == str(tmp_path / "lake")
    assert config.sources.erp[0].url == f"sqlite:///{tmp_path / 'erp.sqlite'}"


def test_a_mistake_names_the_key_and_what_was_expected(tmp_path: Path) -> None:
    broken = MINIMAL.replace("primary_key: [id]", "primary_key: []")
    with pytest.raises(ConfigError, match=r"sources\.erp\.0\.tables\.0\.primary_key: .*at least 1"):
        parse_config(broken, tmp_path, origin="plant.yaml")
    with pytest.raises(ConfigError, match=r"sources\.erp\.0\.tabels: Extra inputs"):
        parse_config(MINIMAL.replace("tables:", "tabels:"), tmp_path)
    with pytest.raises(ConfigError, match=r"endpoint.*opc\.tcp://"):
        parse_config(MINIMAL + "  opcua: [{name: p, endpoint: 'http://x', roots: ['2:Plant']}]\n", tmp_path)


def test_source_names_must_be_unique(tmp_path: Path) -> None:
    twice = MINIMAL + "  logs: [{name: erp, path: logs, format: syslog}]\n"
    with pytest.raises(ConfigError, match="'erp' is used twice"):
        parse_config(twice, tmp_path)


def test_the_demo_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANTLAKE_LAKE_ROOT", raising=False)
    config = load_config(Path(__file__).parents[2] / "plantlake.yaml")
    assert {s.name for s in config.sources.suppliers} == {"acme", "stahlwerk"}
    assert config.sources.opcua[0].roots == ["2:Plant"]
    assert Path(config.lake.root).name == "lake"


def test_a_missing_service_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import conftest

    from plantlake.simulator.process import free_port

    monkeypatch.setitem(conftest.SERVICES, "Nothing", ("127.0.0.1", free_port(), "start it: nothing"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"Nothing is not reachable .* start it: nothing"):
        conftest.require_service("Nothing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and Nothing is not reachable"):
        conftest.require_service("Nothing")


def test_a_commented_out_example_may_name_a_variable_that_is_not_set() -> None:
    text = "lake: {root: ${ROOT:-lake}}\n  # url: ${ERP_PASSWORD}\nname: x # ${NOT_SET}\n"
    with pytest.raises(ConfigError, match="NOT_SET"):  # a value's trailing comment is not a comment line
        substitute_env(text, {})
    assert (
        substitute_env(text.replace(" # ${NOT_SET}", ""), {})
        == "lake: {root: lake}\n  # url: ${ERP_PASSWORD}\nname: x\n"
    )
