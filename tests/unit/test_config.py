from pathlib import Path

import pytest

from plantlake.config import ConfigError, load_config, parse_config, substitute_env
from plantlake.lake.layout import Lake

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


S3_LAKE = """
lake:
  root: s3://lake/plant-a/
  local: ${PLANTLAKE_LAKE_LOCAL:-}
  s3: {endpoint: "${AWS_ENDPOINT_URL}", region: "${AWS_REGION:-}", access_key_id: k, secret_access_key: "${SECRET}"}
sources: {}
"""


def test_an_s3_lake_takes_its_store_from_the_environment_and_needs_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://store.example:8333")
    monkeypatch.setenv("SECRET", "s3cret")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("PLANTLAKE_LAKE_LOCAL", raising=False)
    config = parse_config(S3_LAKE, tmp_path)
    assert config.lake.storage_options == {
        "AWS_ENDPOINT_URL": "http://store.example:8333",
        "AWS_REGION": "us-east-1",  # unset: the default region, not an empty one
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s3cret",
        "AWS_ALLOW_HTTP": "true",
    }
    with pytest.raises(ConfigError, match=r"lake\.local"):
        Lake.from_config(config.lake)  # a catalog and spool files cannot go into a bucket
    monkeypatch.setenv("PLANTLAKE_LAKE_LOCAL", "work")
    lake = Lake.from_config(parse_config(S3_LAKE, tmp_path).lake)
    assert lake.root.uri == "s3://lake/plant-a" and lake.local == tmp_path / "work"
    assert lake.table("silver", "orders").uri == "s3://lake/plant-a/silver/orders"
    assert "s3cret" not in repr(lake) and "s3cret" not in repr(config.lake)


def test_a_local_lake_works_in_its_root_unless_told_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANTLAKE_LAKE_LOCAL", raising=False)
    config = parse_config("lake: {root: lake, local: '${PLANTLAKE_LAKE_LOCAL:-}'}\nsources: {}\n", tmp_path)
    lake = Lake.from_config(config.lake)
    assert lake.root.path == tmp_path / "lake" == lake.local and lake.catalog_file.parent == tmp_path / "lake"
