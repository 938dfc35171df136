"""The Kubernetes run launcher of ``deploy/dagster.yaml``: the Job it submits, and that Job's command runs the run.

There is no Kubernetes cluster on this machine, so the API server is a
loopback stand-in (:mod:`metro_assets_tests.deploy.fake_kubernetes`) and the
test plays the kubelet: it resolves the Job's environment (its ConfigMap and
Secret references, as Kubernetes would) and runs the Job's container command
here. What is real: the instance loaded from the deploy config (only the
kubeconfig replaces the in-cluster credentials) on a real PostgreSQL server,
dagster-k8s building the Job and sending it through the official client, and
``dagster api execute_run`` executing ``simulate`` from the Job's arguments.
What is not: scheduling, the image (the code is this checkout), the volumes.
The last test launches the same way with what the Helm chart writes from
``deploy/helm/values.yaml`` and checks that the values reach the run's Job.
"""

import json
import os
import subprocess
from datetime import timedelta

import duckdb
import yaml
from dagster import DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster_k8s import K8sRunLauncher

from metro_assets_tests.conftest import START
from metro_assets_tests.deploy.conftest import DEPLOY, ROOT, deploy_instance_config
from metro_assets_tests.deploy.fake_kubernetes import FakeKubernetes
from metro_assets_tests.deploy.postgres import query
from metro_assets_tests.ops.tools import tool

JOB_IMAGE = "registry.example.com/metro-offers:0123abc"  # what the code server reports as its image
NAMESPACE = "metro"
DAYS = [START + timedelta(days=i) for i in range(2)]


def resolve_env(container: dict, config_maps: dict, secrets: dict) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ``envFrom`` sources, then ``env`` entries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def launch(kube: FakeKubernetes, home, config: dict, container_context: dict | None = None):
    """Launch ``simulate`` through the K8sRunLauncher of instance ``config``; returns (run, namespace, Job).

    ``container_context``: what the code location adds for its runs (the Helm chart's user deployment).
    """
    # outside a cluster: credentials from a kubeconfig instead of the pod's service account
    config["run_launcher"]["config"].update(load_incluster_config=False,
                                            kubeconfig_file=str(kube.write_kubeconfig(home.parent / "kubeconfig")))
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    repository = ReconstructableRepository.for_module("metro_assets.definitions", "defs", working_directory=str(ROOT),
                                                      container_image=JOB_IMAGE, container_context=container_context)
    simulate = repository.get_reconstructable_job("simulate")
    tags = {"dagster/asset_partition_range_start": DAYS[0].isoformat(),
            "dagster/asset_partition_range_end": DAYS[-1].isoformat()}
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_launcher, K8sRunLauncher)
        run = instance.create_run_for_job(job_def=simulate.get_definition(), tags=tags,
                                          job_code_origin=simulate.get_python_origin())
        instance.launch_run(run.run_id, workspace=None)
    [((namespace, _), job)] = kube.jobs.items()
    return run, namespace, job


def test_the_k8s_launcher_submits_a_job_whose_command_runs_the_run(
        tmp_path, tiny_env, dagster_database, postgres_server, monkeypatch):
    # the metro-settings ConfigMap of deploy/README.md: the settings and where Postgres is
    settings_map = {key: value for key, value in os.environ.items() if key.startswith("METRO_")}
    settings_map.update({k: v for k, v in dagster_database.items() if k != "DAGSTER_PG_PASSWORD"},
                        DAGSTER_K8S_NAMESPACE=NAMESPACE, METRO_RETRY_DELAY="0")
    for key, value in {**dagster_database, "DAGSTER_K8S_NAMESPACE": NAMESPACE}.items():
        monkeypatch.setenv(key, value)  # the daemon's environment, where the launch happens
    home = tmp_path / "dagster_home"
    config = deploy_instance_config()
    launcher_config = config["run_launcher"]["config"]
    with FakeKubernetes() as kube:
        run, namespace, job = launch(kube, home, config)

        # the Job as the API server received it
        assert namespace == NAMESPACE and job["metadata"]["name"].startswith("dagster-run-")
        assert job["metadata"]["labels"]["dagster/run-id"] == run.run_id
        assert job["metadata"]["labels"]["app.kubernetes.io/part-of"] == "metro-offers"
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "dagster" and pod["restartPolicy"] == "Never"
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert volumes["metro-data"]["persistentVolumeClaim"]["claimName"] == "metro-data"
        [container] = pod["containers"]
        assert container["image"] == JOB_IMAGE and container["imagePullPolicy"] == "IfNotPresent"
        assert [m["mountPath"] for m in container["volumeMounts"]] == ["/data"]
        assert container["resources"] == launcher_config["resources"]
        assert {"configMapRef": {"name": "metro-settings"}} in container["envFrom"]
        assert {"secretRef": {"name": "metro-storage-credentials"}} in container["envFrom"]
        password = next(e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD")
        assert password["valueFrom"]["secretKeyRef"] == {"name": "dagster-postgresql-secret",
                                                         "key": "postgresql-password"}
        args = container["args"]
        assert args[:3] == ["dagster", "api", "execute_run"]
        # the instance travels in the arguments with its env references, never the password itself
        assert "DAGSTER_PG_PASSWORD" in args[3] and dagster_database["DAGSTER_PG_PASSWORD"] not in json.dumps(job)

        # the kubelet's part: the Job's environment, then its command
        pod_env = resolve_env(container, {"metro-settings": settings_map},
                              {"metro-storage-credentials": {},
                               "dagster-postgresql-secret": {"postgresql-password": dagster_database[
                                   "DAGSTER_PG_PASSWORD"]}})
        assert pod_env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("METRO_", "DAGSTER_"))}
        env = {**base, **pod_env, "DAGSTER_HOME": str(home),  # /opt/dagster does not exist on this machine
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        worker = subprocess.run([str(tool("dagster")), *args[1:]], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=240)
        assert worker.returncode == 0, worker.stderr[-3000:]

    conn = postgres_server.connect(dagster_database["DAGSTER_PG_DB"])
    try:
        assert query(conn, "SELECT status FROM runs WHERE run_id = %s", run.run_id) == [("SUCCESS",)]
        run_tags = dict(query(conn, "SELECT key, value FROM run_tags WHERE run_id = %s", run.run_id))
        assert run_tags["dagster/image"] == JOB_IMAGE
        messages = [json.loads(body)["dagster_event"]["message"] for (body,) in query(
            conn, "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ENGINE_EVENT' "
                  "ORDER BY id", run.run_id)]
        launched = [f"[K8sRunLauncher] {m}" for m in ("Creating Kubernetes run worker job",
                                                      "Kubernetes run worker job created")]
        assert [m for m in messages if m in launched] == launched, messages
        partitions = query(conn, "SELECT DISTINCT partition FROM event_logs WHERE run_id = %s "
                                 "AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY 1", run.run_id)
        assert partitions == [(day.isoformat(),) for day in DAYS]
    finally:
        conn.close()
    with duckdb.connect(str(tiny_env.warehouse), read_only=True) as con:
        assert [d for (d,) in con.execute("SELECT DISTINCT day FROM orders ORDER BY day").fetchall()] == DAYS


# -- the Helm chart's path -----------------------------------------------------------------------------------
# With the chart, the launcher config and each code location's container context are written by the chart's
# templates from deploy/helm/values.yaml. These two functions transcribe those templates (chart 1.13:
# `dagsterYaml.runLauncher.k8s` and the user deployments' `k8sContainerContext`) for the keys our values
# set; the names the chart derives from the release name are marked. A change in the chart is not caught here.
RELEASE = "metro"


def chart_launcher_config(values: dict) -> dict:
    """The ``run_launcher.config`` the chart renders from ``values``."""
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {"load_incluster_config": k8s["loadInclusterConfig"], "job_namespace": NAMESPACE,
              "image_pull_policy": k8s["imagePullPolicy"],
              "service_account_name": f"{RELEASE}-dagster",                 # derived from the release
              "dagster_home": "/opt/dagster/dagster_home",
              "instance_config_map": f"{RELEASE}-dagster-instance",         # derived from the release
              "postgres_password_secret": values["global"]["postgresqlSecretName"]}
    if k8s["envConfigMaps"]:
        config["env_config_maps"] = [c["name"] for c in k8s["envConfigMaps"]]
    if k8s["envSecrets"]:
        config["env_secrets"] = [c["name"] for c in k8s["envSecrets"]]
    for key, name in [("envVars", "env_vars"), ("volumeMounts", "volume_mounts"), ("volumes", "volumes"),
                      ("labels", "labels"), ("resources", "resources")]:
        if k8s.get(key):
            config[name] = k8s[key]
    if k8s.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    return config


def chart_container_context(values: dict) -> dict:
    """What the chart's user deployment hands its runs (``includeConfigInLaunchedRuns``)."""
    [deployment] = values["dagster-user-deployments"]["deployments"]
    k8s = {"image_pull_policy": deployment["image"]["pullPolicy"],
           "env_config_maps": [f"{RELEASE}-dagster-{deployment['name']}-user-env"],  # derived from the release
           "namespace": NAMESPACE, "service_account_name": f"{RELEASE}-dagster-user-deployments",
           "env": deployment["env"],
           "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}}}
    for key, name in [("envSecrets", "env_secrets"), ("envConfigMaps", "env_config_maps")]:
        k8s[name] = k8s.get(name, []) + [c["name"] for c in deployment.get(key) or []]
    for key, name in [("volumeMounts", "volume_mounts"), ("volumes", "volumes"), ("resources", "resources")]:
        if deployment.get(key):
            k8s[name] = deployment[key]
    return {"k8s": k8s}


def test_the_helm_values_reach_the_run_pods(tmp_path, tiny_env, dagster_database, monkeypatch):
    """The settings, secret, volume and run resources of the values file end up in the run's Job."""
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    for key, value in dagster_database.items():
        monkeypatch.setenv(key, value)
    config = deploy_instance_config()
    config["run_launcher"]["config"] = chart_launcher_config(values)
    with FakeKubernetes() as kube:
        run, namespace, job = launch(kube, tmp_path / "dagster_home", config, chart_container_context(values))
    assert namespace == NAMESPACE
    [deployment] = values["dagster-user-deployments"]["deployments"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    # the METRO_* settings of the values file are the run's environment
    env = {e["name"]: e.get("value") for e in container["env"]}
    for entry in deployment["env"]:
        assert env[entry["name"]] == entry["value"], entry
    assert {"secretRef": {"name": "metro-storage-credentials"}} in container["envFrom"]
    password = next(e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"]["name"] == values["global"]["postgresqlSecretName"]
    # the shared volume, mounted where METRO_WAREHOUSE and METRO_SERVING point
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["metro-data"]["persistentVolumeClaim"]["claimName"] == "metro-data"
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/data"]
    # sized by the launcher (the code server's resources are left unset so they do not size the runs)
    assert container["resources"] == values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    assert job["metadata"]["labels"]["app.kubernetes.io/part-of"] == "metro-offers"
    assert container["image"] == JOB_IMAGE
