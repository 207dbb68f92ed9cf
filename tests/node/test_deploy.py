"""
What can be checked of the container deployment without Docker or a
cluster: docker-compose.yml, the nginx balancer config and the Kubernetes
manifests parse and hold together (probes, resources, drain, disruption
budgets, selectors, secret references, the shared key-encryption key, the
public origin), `kubectl kustomize` renders them, and the commands the image
runs work as plain processes.
"""

import glob
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

import yaml
from twisted.trial import unittest

from components.core.settings import Settings

from tests.support.node import CROSSBAR, REPO

K8S = os.path.join(REPO, "deploy", "k8s")
COMPOSE = os.path.join(REPO, "docker-compose.yml")
SECRETS = {"hub-jwt", "hub-node-key", "hub-e2e", "hub-usersync", "hub-db", "hub-aws", "hub-device", "hub-tls"}
WORKLOADS = ("Deployment", "StatefulSet")


def _manifests():
    documents = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue
        with open(path) as handle:
            documents.extend(doc for doc in yaml.safe_load_all(handle) if doc)
    return documents


def _compose():
    with open(COMPOSE) as handle:
        return yaml.safe_load(handle)


def _containers(workload):
    return workload["spec"]["template"]["spec"]["containers"]


def _matches(selector, labels):
    return all(labels.get(key) == value for key, value in selector.items())


def _env(container):
    """A container's ``env`` as {name: value or ("secret", name, key)}."""
    values = {}
    for variable in container.get("env", []):
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        values[variable["name"]] = ("secret", ref["name"], ref["key"]) if ref else variable.get("value")
    return values


def _secret_mounts(workload, container):
    """{mountPath: secretName} of a container's secret volumes."""
    secrets = {volume["name"]: volume["secret"]["secretName"]
               for volume in workload["spec"]["template"]["spec"].get("volumes", []) if "secret" in volume}
    return {mount["mountPath"]: secrets[mount["name"]] for mount in container.get("volumeMounts", [])
            if mount["name"] in secrets}


class KubernetesTests(unittest.SynchronousTestCase):
    """deploy/k8s."""

    def setUp(self):
        self.docs = _manifests()
        self.workloads = [doc for doc in self.docs if doc["kind"] in WORKLOADS]

    def test_every_manifest_is_named_and_typed(self):
        """Every document has apiVersion, kind and a name; the master Deployment and client StatefulSet exist."""
        for doc in self.docs:
            self.assertTrue(doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc)
        kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in self.docs}
        self.assertTrue({("Deployment", "master"), ("StatefulSet", "client"), ("ConfigMap", "hub-config"),
                         ("Ingress", "hub"), ("Job", "hub-migrate")} <= kinds)

    def test_probes_resources_and_drain(self):
        """Each workload container: liveness on /health/live, readiness on /health/ready, CPU and memory
        requests, a preStop that marks the node draining, and a grace period longer than the preStop."""
        for workload in self.workloads:
            spec = workload["spec"]["template"]["spec"]
            for container in _containers(workload):
                self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/health/live")
                self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/health/ready")
                self.assertTrue({"cpu", "memory"} <= set(container["resources"]["requests"]))
                self.assertIn("memory", container["resources"]["limits"])
                hook = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
                self.assertIn("touch /app/.crossbar/draining", hook)
                sleep = int(re.search(r"sleep (\d+)", hook).group(1))
                self.assertGreaterEqual(spec["terminationGracePeriodSeconds"], sleep + 20)
                self.assertTrue(spec["securityContext"]["runAsNonRoot"])

    def test_rolling_updates_and_disruption_budgets(self):
        """Workloads roll one pod at a time and each has a PodDisruptionBudget selecting its pods."""
        budgets = [doc for doc in self.docs if doc["kind"] == "PodDisruptionBudget"]
        for workload in self.workloads:
            strategy = workload["spec"].get("strategy") or workload["spec"].get("updateStrategy")
            self.assertEqual(strategy["type"], "RollingUpdate")
            labels = workload["spec"]["template"]["metadata"]["labels"]
            self.assertEqual(workload["spec"]["selector"]["matchLabels"], labels)
            covering = [budget for budget in budgets if _matches(budget["spec"]["selector"]["matchLabels"], labels)]
            self.assertEqual(len(covering), 1, workload["metadata"]["name"])

    def test_services_select_pods(self):
        """Every Service selects the pods of a workload and targets a port those pods name."""
        for service in (doc for doc in self.docs if doc["kind"] == "Service"):
            targets = [workload for workload in self.workloads
                       if _matches(service["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])]
            self.assertEqual(len(targets), 1, service["metadata"]["name"])
            names = {port["name"] for container in _containers(targets[0]) for port in container["ports"]}
            for port in service["spec"]["ports"]:
                self.assertIn(port["targetPort"], names)
        peers = next(doc for doc in self.docs if doc["kind"] == "Service" and doc["metadata"]["name"] == "client-peers")
        client = next(doc for doc in self.workloads if doc["metadata"]["name"] == "client")
        self.assertEqual((peers["spec"]["clusterIP"], client["spec"]["serviceName"]), ("None", "client-peers"))

    def test_secrets_are_references(self):
        """Secrets come from secretKeyRef/secret volumes of the documented Secrets; no key material inline."""
        text = yaml.safe_dump_all(self.docs)
        self.assertNotIn("PRIVATE KEY", text)
        self.assertNotIn("kind: Secret\n", text)
        names = set(re.findall(r"secretName: (\S+)", text)) | set(
            re.findall(r"secretKeyRef:\s*\n\s*key: \S+\n\s*name: (\S+)", text))
        self.assertTrue(names)
        self.assertLessEqual(names, SECRETS)
        for workload in self.workloads + [doc for doc in self.docs if doc["kind"] == "Job"]:
            for container in _containers(workload) if workload["kind"] != "Job" else \
                    workload["spec"]["template"]["spec"]["containers"]:
                for variable in container.get("env", []):
                    self.assertFalse("value" in variable and re.search(r"(?i)secret|password|://.*@",
                                                                      str(variable["value"])), variable)

    def test_master_and_clients_share_the_key_encryption_key(self):
        """Master and client pods read E2E_KEK_FILE from the one Secret hub-e2e, and the master reads the
        data keys from the clients' database, so /auth/token can unwrap keys any node created."""
        by_name = {workload["metadata"]["name"]: workload for workload in self.workloads}
        for name in ("master", "client"):
            workload = by_name[name]
            container = _containers(workload)[0]
            path = _env(container).get("E2E_KEK_FILE")
            self.assertIsNotNone(path, name)
            self.assertEqual(os.path.basename(path), "e2e_kek", name)  # the file keygen writes
            self.assertEqual(_secret_mounts(workload, container).get(os.path.dirname(path)), "hub-e2e", name)
            self.assertNotIn("E2E_KEK", _env(container), name)
        self.assertEqual(_env(_containers(by_name["master"])[0])["DATABASE_URL"],
                         _env(_containers(by_name["client"])[0])["DATABASE_URL"])

    def test_public_url_is_the_tls_ingress_origin(self):
        """PUBLIC_URL (config map) is https:// on the Ingress host, which the Ingress serves with TLS."""
        config = next(doc for doc in self.docs if doc["kind"] == "ConfigMap")
        ingress = next(doc for doc in self.docs if doc["kind"] == "Ingress")
        public = urlsplit(config["data"]["PUBLIC_URL"])
        self.assertEqual(public.scheme, "https")
        self.assertEqual([rule["host"] for rule in ingress["spec"]["rules"]], [public.netloc])
        self.assertIn(public.netloc, ingress["spec"]["tls"][0]["hosts"])

    def test_kustomize_renders(self):
        """`kubectl kustomize deploy/k8s` renders every manifest into the namespace (offline)."""
        kubectl = shutil.which("kubectl")
        self.assertIsNotNone(kubectl, "kubectl is required (scripts/install-test-deps.sh installs it)")
        result = subprocess.run([kubectl, "kustomize", K8S], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        self.assertEqual(len(rendered), len(self.docs))
        for doc in rendered:
            if doc["kind"] != "Namespace":
                self.assertEqual(doc["metadata"]["namespace"], "reactive-hub")
        images = {container["image"] for doc in rendered if doc["kind"] in WORKLOADS + ("Job",)
                  for container in doc["spec"]["template"]["spec"]["containers"]}
        self.assertEqual(images, {"registry.example.com/reactive-hub:0.1.0"})


class ComposeTests(unittest.SynchronousTestCase):
    """docker-compose.yml and its nginx balancer."""

    def setUp(self):
        self.services = _compose()["services"]

    def test_services(self):
        """Master, two linked client nodes, PostgreSQL, moto as SNS/SQS, a one-shot init and the balancer."""
        self.assertEqual(set(self.services), {"postgres", "aws", "init", "master", "client-1", "client-2",
                                              "balancer"})
        hub = [name for name, service in self.services.items() if service.get("image") == "reactive-hub:latest"]
        self.assertEqual(set(hub), {"aws", "init", "master", "client-1", "client-2"})
        self.assertTrue(all(self.services[name]["build"] == "." for name in hub))
        self.assertEqual(self.services["aws"]["command"][0], "moto_server")
        self.assertIn("--config master.json", " ".join(self.services["master"]["command"]))
        self.assertEqual((self.services["client-1"]["environment"]["PEER"],
                          self.services["client-2"]["environment"]["PEER"]), ("client-2:8090", "client-1:8090"))
        self.assertIn("JWT_PRIVATE_KEY_FILE", self.services["master"]["environment"])
        self.assertNotIn("JWT_PRIVATE_KEY_FILE", self.services["client-1"]["environment"])
        for name in ("master", "client-1", "client-2"):
            self.assertEqual(self.services[name]["depends_on"]["init"]["condition"],
                             "service_completed_successfully")
        self.assertEqual(list(self.services["balancer"]["ports"]), ["8080:8080"])

    def test_shared_key_encryption_key_and_public_url(self):
        """Master and clients get E2E_KEK_FILE, the file `init` makes with keygen in the shared secrets
        volume, and the public origin (PUBLIC_URL, overridable, plain http on the local balancer)."""
        init = " ".join(self.services["init"]["command"])
        keygen_dir = re.search(r"components\.auth\.keygen (\S+)", init).group(1)
        for name in ("master", "client-1", "client-2"):
            environment = self.services[name]["environment"]
            self.assertEqual(environment["E2E_KEK_FILE"], os.path.join(keygen_dir, "e2e_kek"), name)
            self.assertIn("secrets:" + keygen_dir, self.services[name]["volumes"])
            self.assertEqual(environment["PUBLIC_URL"], "${PUBLIC_URL:-http://localhost:8080}", name)
            self.assertNotIn("E2E_KEK", environment)

    def test_balancer_routes(self):
        """nginx sends /auth/ to the master and /ws (with the upgrade headers) and pages to both client nodes."""
        with open(os.path.join(REPO, "deploy", "compose", "nginx.conf")) as handle:
            conf = handle.read()
        self.assertRegex(conf, r"location /auth/ \{\s*proxy_pass http://master;")
        self.assertRegex(conf, r"location /ws \{\s*proxy_pass http://clients;")
        self.assertIn("proxy_set_header Upgrade $http_upgrade;", conf)
        self.assertIn("server client-1:8080", conf)
        self.assertIn("server client-2:8080", conf)


class ImageCommandTests(unittest.TestCase):
    """The image's commands, run as plain processes."""

    timeout = 120

    def run_module(self, *args, env=None, cwd=REPO):
        return subprocess.run([sys.executable, "-m"] + list(args), capture_output=True, text=True, timeout=90,
                              cwd=cwd, env=dict(os.environ, **(env or {})))

    def test_keygen(self):
        """keygen writes the JWT pair and the shared node key with tight modes, and keeps them when run again."""
        directory = tempfile.mkdtemp(prefix="hub-keygen-")
        self.addCleanup(shutil.rmtree, directory, True)
        first = self.run_module("components.auth.keygen", directory)
        self.assertEqual(first.returncode, 0, first.stderr)
        with open(os.path.join(directory, "jwt.key"), "rb") as handle:
            private = handle.read()
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(directory, "jwt.key")).st_mode), 0o600)
        self.assertTrue(os.path.exists(os.path.join(directory, "node", "key.priv")))
        kek_path = os.path.join(directory, "e2e_kek")
        self.assertEqual(stat.S_IMODE(os.stat(kek_path).st_mode), 0o600)
        self.assertIn("E2E_KEK_FILE=" + kek_path, first.stdout)
        with open(kek_path, "rb") as handle:
            kek_file = handle.read()
        second = self.run_module("components.auth.keygen", directory)
        self.assertEqual(second.returncode, 0, second.stderr)
        with open(os.path.join(directory, "jwt.key"), "rb") as handle:
            self.assertEqual(handle.read(), private)
        with open(kek_path, "rb") as handle:
            self.assertEqual(handle.read(), kek_file)
        from components.e2e.keys import load_kek
        self.assertEqual(len(load_kek(Settings({}, {"E2E_KEK_FILE": kek_path}, directory))), 32)
        from components.auth import tokens
        keys = tokens.load_keys(Settings({}, {"JWT_PUBLIC_KEY_FILE": os.path.join(directory, "jwt.pub"),
                                 "JWT_PRIVATE_KEY_FILE": os.path.join(directory, "jwt.key")}, directory))
        self.assertEqual(keys.algorithm, "EdDSA")

    def test_statefulset_pod_config(self):
        """The client pod's command makes a config linking client-1 to client-0 and client-2 that crossbar checks,
        reading the dev config from the node directory as it does in the image."""
        directory = tempfile.mkdtemp(prefix="hub-pod-")
        self.addCleanup(shutil.rmtree, directory, True)
        shutil.copy(os.path.join(REPO, ".crossbar", "config.json"), directory)
        result = self.run_module("components.node.topology", "client", "--mesh", "client-peers", "--replicas", "3",
                                 env={"HOSTNAME": "client-1", "CROSSBAR_DIR": directory}, cwd=directory)
        self.assertEqual(result.returncode, 0, result.stderr)
        config = json.loads(result.stdout)
        realm = config["workers"][0]["realms"][0]
        self.assertEqual([link["transport"]["endpoint"]["host"] for link in realm["rlinks"]],
                         ["client-0.client-peers", "client-2.client-peers"])
        with open(os.path.join(directory, "node.json"), "w") as handle:
            handle.write(result.stdout)
        checked = subprocess.run([CROSSBAR, "check", "--cbdir", directory, "--config", "node.json"],
                                 capture_output=True, text=True, timeout=60, env=dict(os.environ, PORT="8080"))
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
