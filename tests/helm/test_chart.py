"""The Helm chart, with Helm's own Go SDK (helm-python-sdk; no helm binary): strict lint, renders
with several value sets, every rendered core manifest validated strictly against the Kubernetes
1.29 and newest schemas that kubernetes-validate ships, the generated rules and dashboards carried
unchanged, the named sidecar template used from another chart, bad values refused by the schema.
No cluster can run here: this is the closest real thing."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from jobsight.settings import load_settings
from tests.support.paths import ROOT

CHART = ROOT / "helm" / "jobsight"
KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
CUSTOM = {"monitoring.coreos.com", "argoproj.io", "flagger.app"}  # CRDs: no upstream schema
EVERYTHING = {
    "temporal": {
        "enabled": True,
        "address": "temporal-frontend.temporal:7233",
        "httpAddress": "temporal-frontend.temporal:7243",
        "tls": True,
        "uiUrl": "https://temporal.example.com",
        "apiKey": {"existingSecret": "temporal-cloud", "key": "TEMPORAL_API_KEY"},
    },
    "sidecar": {
        "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4318"}]
    },
    "config": {
        "poll_interval": "10s",
        "error_rate_rollback": "10%",
        "sources": ["jobs", "pgqueue", "pgboss", "postgres", "temporal"],
    },
    "exampleApp": {"readinessFromSidecar": True},
    "imagePullSecrets": [{"name": "registry"}],
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "podMonitor": {"enabled": True},
    },
    "prometheusRule": {"enabled": True},
    "dashboards": {"enabled": True},
    "networkPolicy": {
        "enabled": True,
        "from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
    },
    "argoRollouts": {"analysisTemplate": {"enabled": True}},
    "flagger": {"metricTemplate": {"enabled": True}},
}
VALUE_SETS = {
    "defaults": {},
    "injected": {"mode": "exampleApp", "exampleApp": {"injectSidecar": True}},
    "not-injected": {"exampleApp": {"injectSidecar": False}},
    "native": {"sidecar": {"native": True}},
    "standalone": {"mode": "standalone"},
    "everything": EVERYTHING,
    "none": {"mode": "none"},
}


def render(values: dict, chart: Path = CHART) -> list[dict]:
    with helm.Chart.load(str(chart)) as loaded:
        out = loaded.render(values, name="billing", namespace="prod")
    docs = []
    for name, text in sorted(out.items()):
        if name.endswith("NOTES.txt"):
            continue
        docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_strict_lint_is_clean():
    report = helm.lint(str(CHART), strict=True)
    assert report["errors"] == []
    # severity 1 is INFO ("icon is recommended"); nothing at WARNING or above
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_manifest_validates_strictly(name: str):
    docs = render(VALUE_SETS[name])
    assert docs
    for doc in docs:
        group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
        if group in CUSTOM:
            assert doc["metadata"]["name"] and doc["spec"], doc["kind"]
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def sidecar_of(deployment: dict, native: bool = False) -> dict:
    spec = deployment["spec"]["template"]["spec"]
    containers = spec.get("initContainers", []) if native else spec["containers"]
    (sidecar,) = [c for c in containers if c["name"] == "jobsight"]
    return sidecar


def test_safe_defaults_and_probes():
    (deployment,) = of_kind(render({}), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sidecar = sidecar_of(deployment)
    context = sidecar["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["capabilities"]["drop"] == ["ALL"]
    assert context["allowPrivilegeEscalation"] is False
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["resources"]["limits"]["memory"] and sidecar["resources"]["requests"]["cpu"]
    url = next(e for e in sidecar["env"] if e["name"] == "DATABASE_URL")
    own = {"name": "jobsight-sidecar-database", "key": "DATABASE_URL"}
    assert url["valueFrom"]["secretKeyRef"] == own  # its own, read-only role
    worker = next(c for c in pod["containers"] if c["name"] == "worker")
    worker_url = next(e for e in worker["env"] if e["name"] == "DATABASE_URL")
    assert worker_url["valueFrom"]["secretKeyRef"]["name"] == "jobsight-database"
    assert "readinessProbe" not in worker  # only when asked for, with the README's warning


def test_the_web_config_comes_from_a_secret_and_the_monitors_follow_it():
    basic = {"username": {"name": "scrape", "key": "user"},
             "password": {"name": "scrape", "key": "password"}}  # fmt: skip
    tls = {"ca": {"secret": {"name": "jobsight-ca", "key": "ca.crt"}}}
    docs = render({
        "sidecar": {"webConfig": {"existingSecret": "jobsight-web", "tls": True},
                    "database": {"existingSecret": ""}},
        "metrics": {"serviceMonitor": {"enabled": True, "basicAuth": basic, "tlsConfig": tls},
                    "podMonitor": {"enabled": True, "basicAuth": basic}},
    })  # fmt: skip
    (deployment,) = of_kind(docs, "Deployment")
    sidecar = sidecar_of(deployment)
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["JOBSIGHT_WEB_CONFIG_FILE"]["value"] == "/etc/jobsight/web/web.yml"
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "jobsight-database"
    assert {"name": "jobsight-web", "mountPath": "/etc/jobsight/web", "readOnly": True} in (
        sidecar["volumeMounts"]
    )
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "jobsight-web", "secret": {"secretName": "jobsight-web"}} in volumes
    assert sidecar["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    (service_monitor,) = of_kind(docs, "ServiceMonitor")
    (endpoint,) = service_monitor["spec"]["endpoints"]
    assert (endpoint["scheme"], endpoint["basicAuth"], endpoint["tlsConfig"]) == (
        "https",
        basic,
        tls,
    )
    (pod_monitor,) = of_kind(docs, "PodMonitor")
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["basicAuth"] == basic
    plain = sidecar_of(of_kind(render({}), "Deployment")[0])
    assert "JOBSIGHT_WEB_CONFIG_FILE" not in {e["name"] for e in plain["env"]}
    assert plain["livenessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_modes_place_the_sidecar_where_asked():
    (native,) = of_kind(render({"sidecar": {"native": True}}), "Deployment")
    assert sidecar_of(native, native=True)["restartPolicy"] == "Always"
    assert [c["name"] for c in native["spec"]["template"]["spec"]["containers"]] == ["worker"]
    (alone,) = of_kind(render({"mode": "standalone"}), "Deployment")
    assert [c["name"] for c in alone["spec"]["template"]["spec"]["containers"]] == ["jobsight"]
    assert alone["spec"]["replicas"] == 2
    (plain,) = of_kind(render({"exampleApp": {"injectSidecar": False}}), "Deployment")
    assert [c["name"] for c in plain["spec"]["template"]["spec"]["containers"]] == ["worker"]
    assert of_kind(render({"mode": "none"}), "Deployment") == []
    (everything,) = of_kind(render(EVERYTHING), "Deployment")
    worker = everything["spec"]["template"]["spec"]["containers"][0]
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in sidecar_of(everything)["env"]}
    assert env["TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "temporal-cloud"
    assert env["TEMPORAL_ADDRESS"]["value"] == "temporal-frontend.temporal:7233"
    assert env["JOBSIGHT_TEMPORAL_HTTP_ADDRESS"]["value"] == "temporal-frontend.temporal:7243"


def test_the_configmap_is_a_valid_sidecar_config(tmp_path: Path):
    (config,) = [
        c
        for c in of_kind(render(EVERYTHING), "ConfigMap")
        if c["metadata"]["name"].endswith("-config")
    ]
    path = tmp_path / "jobsight.yaml"
    path.write_text(config["data"]["jobsight.yaml"])
    settings = load_settings({"DATABASE_URL": "postgresql://u@db/app"}, str(path))
    assert settings.poll_interval == 10 and settings.triggers["error_rate"].rollback == 0.1
    assert "temporal" in settings.sources


def test_a_settings_change_reaches_the_running_sidecar_without_a_restart():
    """The pod template carries nothing of the ConfigMap (a change would roll every pod), and
    the file is mounted as a whole folder (a subPath mount is never updated by the kubelet);
    the sidecar watches the file it is given (tests/sidecar/test_reload.py)."""
    for deployment in of_kind(render(EVERYTHING), "Deployment"):
        template = deployment["spec"]["template"]
        assert not any("checksum" in k for k in template["metadata"].get("annotations", {}))
        sidecar = sidecar_of(deployment)
        assert sidecar["args"] == ["serve", "--config", "/etc/jobsight/jobsight.yaml"]
        [mount] = [m for m in sidecar["volumeMounts"] if m["name"] == "jobsight-config"]
        assert mount["mountPath"] == "/etc/jobsight" and "subPath" not in mount


def test_rules_and_dashboards_are_the_generated_files():
    docs = render(EVERYTHING)
    (rule,) = of_kind(docs, "PrometheusRule")
    generated = yaml.safe_load((ROOT / "alerts" / "generated" / "prometheusrule.yaml").read_text())
    assert rule["spec"] == generated["spec"]
    boards = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert len(boards) == 4
    for board in boards:
        assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = board["data"].items()
        assert json.loads(text) == json.loads(
            (ROOT / "dashboards" / "generated" / name).read_text()
        )


def test_the_named_sidecar_template_in_an_application_chart(tmp_path: Path):
    app = tmp_path / "billing"
    (app / "templates").mkdir(parents=True)
    (app / "charts").mkdir()
    shutil.copytree(CHART, app / "charts" / "jobsight", ignore=shutil.ignore_patterns("examples"))
    (app / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "billing",
                "version": "1.0.0",
                "dependencies": [{"name": "jobsight", "version": "0.1.0"}],
            }
        )
    )
    (app / "values.yaml").write_text(yaml.safe_dump({"jobsight": {"mode": "none"}}))
    (app / "templates" / "deployment.yaml").write_text("""\
{{- $chart := dict "Name" "jobsight" "Version" "0.1.0" "AppVersion" "0.1.0" }}
{{- $jobsight := dict "Values" .Values.jobsight "Chart" $chart "Release" .Release }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: billing-workers
spec:
  selector:
    matchLabels: {app: billing}
  template:
    metadata:
      labels: {app: billing}
    spec:
      containers:
        - name: worker
          image: billing:1.0.0
        - {{- include "jobsight.sidecar" $jobsight | nindent 10 }}
      volumes:
        {{- include "jobsight.volumes" $jobsight | nindent 8 }}
""")
    docs = render({}, app)
    (deployment,) = [
        d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "billing-workers"
    ]
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]] == [
        "worker",
        "jobsight",
    ]
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)
    assert of_kind(docs, "ConfigMap")  # the sidecar's settings come with the dependency


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "sideways"}, "mode"),
        ({"config": {"pol_interval": "1s"}}, "pol_interval"),
        ({"sidecar": {"port": 70000}}, "port"),
        ({"database": {"existingSecret": "Bad_Name"}}, "existingSecret"),
        ({"temporal": {"enabled": True, "address": "no-port"}}, "address"),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "interval"),
    ],
)
def test_bad_values_fail_with_the_schema_message(values: dict, message: str):
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError) as caught:
        chart.render(values, name="billing", namespace="prod")
    assert message in str(caught.value) and "values don't meet the specifications" in str(
        caught.value
    )


def test_the_sidecar_image_builds_from_the_package(built_wheel: Path):
    """No Docker daemon here: the Dockerfile's build step (a wheel of the project) is run for
    real, and the Dockerfile itself is checked for a non-root user and the entrypoint."""
    dockerfile = (ROOT / "helm" / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile and 'ENTRYPOINT ["jobsight"]' in dockerfile
    assert 'CMD ["serve"]' in dockerfile and "-slim" in dockerfile
    names = zipfile.ZipFile(built_wheel).namelist()
    for expected in (
        "jobsight/cli/__init__.py",
        "jobsight/sidecar/app.py",
        "jobsight/migrations/0004_sidecar_state.sql",
        "jobsight/runners/examples/demo_handlers.py",
    ):
        assert expected in names


def leaf_paths(values: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and key
            not in (
                "config",
                "resources",
                "livenessProbe",
                "readinessProbe",
                "labels",
                "podSecurityContext",
                "securityContext",
            )
        ):
            paths += leaf_paths(value, path + ".")
        else:
            paths.append(path)
    return paths


def test_the_chart_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []
    for path in leaf_paths(values):
        head, _, last = path.rpartition(".")
        if (
            f"`{path}`" not in readme
            and f"`{head}.{last}`" not in readme
            and not (head and f"`{head}." in readme and f"`.{last}`" in readme)
        ):
            missing.append(path)
    assert missing == []


def test_notes_say_where_to_look_and_warn_about_readiness():
    with helm.Chart.load(str(CHART)) as chart:
        calm = chart.render({}, name="billing", namespace="prod")
        warned = chart.render(EVERYTHING, name="billing", namespace="prod")
    notes = next(text for name, text in calm.items() if name.endswith("NOTES.txt"))
    assert "/verdict" in notes and "jobsight-database" in notes and "WARNING" not in notes
    assert "WARNING" in next(text for name, text in warned.items() if name.endswith("NOTES.txt"))
