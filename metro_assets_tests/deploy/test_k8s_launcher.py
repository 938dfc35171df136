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
from metro_assets_tests.deploy.conftest import ROOT, deploy_instance_config
from metro_assets_tests.deploy.fake_kubernetes import FakeKubernetes
from metro_assets_tests.deploy.test_postgres_instance import query
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


def test_the_k8s_launcher_submits_a_job_whose_command_runs_the_run(
        tmp_path, tiny_env, dagster_database, postgres_server, monkeypatch):
    with FakeKubernetes() as kube:
        config = deploy_instance_config()
        launcher_config = config["run_launcher"]["config"]
        # outside a cluster: credentials from a kubeconfig instead of the pod's service account
        launcher_config.update(load_incluster_config=False,
                               kubeconfig_file=str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        # the metro-settings ConfigMap of deploy/README.md: the settings and where Postgres is
        settings_map = {key: value for key, value in os.environ.items() if key.startswith("METRO_")}
        settings_map.update({k: v for k, v in dagster_database.items() if k != "DAGSTER_PG_PASSWORD"},
                            DAGSTER_K8S_NAMESPACE=NAMESPACE, METRO_RETRY_DELAY="0")
        for key, value in {**dagster_database, "DAGSTER_K8S_NAMESPACE": NAMESPACE}.items():
            monkeypatch.setenv(key, value)  # the daemon's environment, where the launch happens

        repository = ReconstructableRepository.for_module("metro_assets.definitions", "defs",
                                                          working_directory=str(ROOT), container_image=JOB_IMAGE)
        simulate = repository.get_reconstructable_job("simulate")
        tags = {"dagster/asset_partition_range_start": DAYS[0].isoformat(),
                "dagster/asset_partition_range_end": DAYS[-1].isoformat()}
        with DagsterInstance.from_config(str(home)) as instance:
            assert isinstance(instance.run_launcher, K8sRunLauncher)
            run = instance.create_run_for_job(job_def=simulate.get_definition(), tags=tags,
                                              job_code_origin=simulate.get_python_origin())
            instance.launch_run(run.run_id, workspace=None)

        # the Job as the API server received it
        [((namespace, name), job)] = kube.jobs.items()
        assert namespace == NAMESPACE and name.startswith("dagster-run-")
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

        # the kubelet's part: the Job's environment, then its command (the instance travels in the arguments,
        # a serialized reference to the instance config with its env references unresolved)
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
