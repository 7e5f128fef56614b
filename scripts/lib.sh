# Shared helpers of the scripts: sourced, not run.

declare -F die >/dev/null || die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Run as root directly, otherwise through sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# Install the given Debian packages that are not installed yet. The package
# lists are refreshed only when the install fails without it.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do installed "$pkg" || missing+=("$pkg"); done
  ((${#missing[@]})) || { echo "all present: $*"; return; }
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}" \
      || die "could not install ${missing[*]}; install them by hand and re-run"
  fi
}

# What building traptor needs: cargo, and a C toolchain with zlib and OpenSSL
# headers for the rdkafka crate's bundled librdkafka (TLS and SASL/SCRAM to Kafka).
ensure_build_prerequisites() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
  if command -v dpkg-query >/dev/null; then
    local packages=(build-essential pkg-config zlib1g-dev libssl-dev python3)
    command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || packages+=(maven)
    apt_install "${packages[@]}"
  else
    echo "not a Debian-like system: make sure a C toolchain, pkg-config, zlib and OpenSSL headers, python3, Java 17+, Maven and redis-server are installed"
  fi
}
