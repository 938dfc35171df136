"""The deploy files agree with Dagster, with each other and with the project (no server, no cluster).

``deploy/dagster.yaml`` must load as an instance config and its launcher
config must satisfy dagster-k8s; the Helm values (the chart writes its own
instance config from them) must make the same choices: limits, monitoring,
launcher resources, Postgres driver; and the settings and module they name
must be ones the project reads.
"""

import re
import shutil
import tomllib

import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher

from metro_assets.runs import POOL
from metro_assets_tests.deploy.conftest import DEPLOY, ROOT, deploy_instance_config

HELM_VALUES = DEPLOY / "helm" / "values.yaml"


def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def user_deployment() -> dict:
    [deployment] = helm_values()["dagster-user-deployments"]["deployments"]
    return deployment


def project_settings() -> set[str]:
    """Every METRO_* variable the code reads (pipeline and API settings)."""
    sources = [ROOT / "metro_assets" / "settings.py", ROOT / "api" / "settings.py"]
    return {name for path in sources for name in re.findall(r'"(METRO_[A-Z0-9_]+)"', path.read_text())}


def test_the_deploy_instance_config_is_valid_for_dagster_and_dagster_k8s(tmp_path):
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # raises on an invalid instance config
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert set(config["storage"]) == {"postgres"}  # runs, event log and schedules in one Postgres database
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = validate_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors


def test_one_writer_per_warehouse_file_on_the_cluster_too():
    concurrency = deploy_instance_config()["concurrency"]
    assert concurrency == {"runs": {"max_concurrent_runs": 1}, "pools": {"default_limit": 1}}
    [pool] = [e["value"] for e in user_deployment()["env"] if e["name"] == "METRO_WAREHOUSE_POOL"]
    assert pool == POOL  # the pool the default limit applies to is the one the assets join


def test_the_helm_values_make_the_same_choices_as_the_deploy_instance():
    instance, values = deploy_instance_config(), helm_values()
    # limits: the chart's top-level `concurrency` (it refuses a run limit set in two places)
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert values["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    assert coordinator["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] is None
    # run monitoring frees a dead run's pool slot
    monitoring, expected = values["dagsterDaemon"]["runMonitoring"], instance["run_monitoring"]
    assert monitoring["enabled"] is expected["enabled"] is True
    assert monitoring["freeSlotsAfterRunEndSeconds"] == expected["free_slots_after_run_end_seconds"]
    assert monitoring["startTimeoutSeconds"] == expected["start_timeout_seconds"]
    # one Kubernetes Job per run, sized the same
    launcher, expected = values["runLauncher"], instance["run_launcher"]["config"]
    assert launcher["type"] == "K8sRunLauncher"
    assert launcher["config"]["k8sRunLauncher"]["resources"] == expected["resources"]
    assert launcher["config"]["k8sRunLauncher"]["loadInclusterConfig"] is expected["load_incluster_config"] is True
    # the same Postgres driver (SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://)
    assert values["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["global"]["postgresqlSecretName"] == expected["postgres_password_secret"]
    assert values["telemetry"]["enabled"] is instance["telemetry"]["enabled"] is False


def test_the_user_deployment_serves_this_code_location_with_known_settings():
    deployment = user_deployment()
    module = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert deployment["codeServerArgs"] == ["-m", module]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # runs get these settings too
    assert deployment["image"]["tag"] not in ("latest", None, "")
    names = [e["name"] for e in deployment["env"]]
    unknown = sorted(n for n in names if n.startswith("METRO_") and n not in project_settings())
    assert not unknown, f"settings the project does not read: {unknown}"
    env = {e["name"]: e["value"] for e in deployment["env"]}
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    for setting in ("METRO_WAREHOUSE", "METRO_SERVING"):  # files on the shared volume, not in the pod
        assert any(env[setting].startswith(mount + "/") for mount in mounts), setting


def test_the_image_installs_the_cluster_extra_and_serves_the_same_module():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {re.split(r"[<>=]", r)[0] for r in extras["cluster"]} == {"dagster-postgres", "dagster-k8s"}
    assert 'pip install ".[cluster]"' in dockerfile
    [cmd] = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.M)
    assert yaml.safe_load(cmd)[-2:] == user_deployment()["codeServerArgs"]
