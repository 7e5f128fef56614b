#!/usr/bin/env bash
# Local Redis and a single-node Kafka (KRaft) broker for the integration tests.
#
#   scripts/services.sh start    install/fetch what is missing, start both, wait until they answer
#   scripts/services.sh stop     stop both and delete their data
#   scripts/services.sh status   exit 0 when both are running
#   scripts/services.sh env      print `export ...` lines: eval "$(scripts/services.sh env)"
#
# Knobs (environment):
#   TRAPTOR_SERVICES_DIR  state dir: pids, ports, logs, data   (default: <repo>/.services)
#   TRAPTOR_CACHE_DIR     where the Kafka jars are kept        (default: ~/.cache/traptor)
#   TRAPTOR_KAFKA_HEAP    broker JVM heap flags                (default: -Xms256m -Xmx1g)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Pinned so every machine runs the same broker; the binding versions match what
# this Kafka release itself ships (log4j2 via slf4j 2).
KAFKA_VERSION=4.4.0
SCALA_VERSION=2.13
LOG4J_VERSION=2.25.5
SLF4J_VERSION=2.0.17

CACHE_DIR=${TRAPTOR_CACHE_DIR:-$HOME/.cache/traptor}
KAFKA_LIB=$CACHE_DIR/kafka-$KAFKA_VERSION/lib
STATE_DIR=${TRAPTOR_SERVICES_DIR:-$ROOT/.services}
KAFKA_HEAP=${TRAPTOR_KAFKA_HEAP:--Xms256m -Xmx1g}
KAFKA_READY_TIMEOUT=${TRAPTOR_KAFKA_READY_TIMEOUT:-120}

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

ensure_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return
  log "installing redis-server with apt-get"
  apt_install redis-server >&2
}

# The broker is plain Maven artifacts: fetch them once into a cache kept between runs.
fetch_kafka() {
  [[ -f $KAFKA_LIB/.complete ]] && return
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka: apt-get install maven"
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIB"
  local started=$SECONDS work
  work=$(mktemp -d)
  # slf4j-api is listed directly: kafka-clients asks for 1.7, which would win
  # over the 2.x that the log4j2 binding needs.
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.traptor</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$SCALA_VERSION</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  # Maven's output is kept for a failure only: even -q prints colour codes.
  if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$work/lib" >"$work/mvn.log" 2>&1; then
    tail -n 30 "$work/mvn.log" >&2
    die "Maven could not fetch Kafka $KAFKA_VERSION (is Maven Central reachable?)"
  fi
  # Move into place only when complete, so an interrupted fetch is retried.
  rm -rf "$KAFKA_LIB"
  mkdir -p "$(dirname "$KAFKA_LIB")"
  mv "$work/lib" "$KAFKA_LIB"
  touch "$KAFKA_LIB/.complete"
  rm -rf "$work"
  local jars=("$KAFKA_LIB"/*.jar)
  log "fetched ${#jars[@]} jars in $((SECONDS - started))s"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Start "$@" in its own session (so stop can kill the whole group) with its own
# pid recorded in $1; output goes to $2. The inner bash writes its own pid and
# then becomes the program, so the pid is the program's and its group's.
# shellcheck disable=SC2016 # $$ and $@ belong to the inner bash
spawn() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null &
  for _ in $(seq 50); do [[ -s $pidfile ]] && return; sleep 0.1; done
  die "could not start $1 (see $logfile)"
}

# Is the process in pid file $1 running? A zombie counts as gone: our services
# are reparented away from us and the reaper may be slow (or absent in containers).
alive() {
  [[ -s $1 ]] || return 1
  pid_alive "$(cat "$1")"
}
pid_alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  read -r stat <"/proc/$1/stat" 2>/dev/null || return 0
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

start_redis() {
  local port=$1
  mkdir -p "$STATE_DIR/redis"
  spawn "$STATE_DIR/redis.pid" "$STATE_DIR/redis.log" \
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$STATE_DIR/redis" --daemonize no
  local deadline=$((SECONDS + 20))
  until redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; do
    alive "$STATE_DIR/redis.pid" || { tail -n 20 "$STATE_DIR/redis.log" >&2; die "redis-server exited"; }
    ((SECONDS < deadline)) || { tail -n 20 "$STATE_DIR/redis.log" >&2; die "Redis did not answer PING within 20s"; }
    sleep 0.2
  done
  log "Redis is up on 127.0.0.1:$port"
}

# The broker's second listener takes SASL/PLAIN with this test-only account, and its third
# TLS with SASL/SCRAM-SHA-512 or SCRAM-SHA-256 (a self-signed certificate for 127.0.0.1, the
# account created for both mechanisms when the log dir is formatted), OAUTHBEARER beside PLAIN
# (Kafka's default validator, which takes unsecured tokens), and mutual TLS (a client
# certificate instead of a password), so that the sink's SASL and TLS settings are tested
# against a real broker (tests/security_kafka_sasl.rs).
SASL_USER=traptor-test
SASL_PASSWORD=sasl-test-only-password
SCRAM_USER=traptor-scram-test
SCRAM_PASSWORD=scram-test-only-password
TLS_STORE_PASSWORD=tls-test-only-password

# keytool comes with the JRE that runs the broker.
keytool_path() {
  command -v keytool 2>/dev/null && return
  local java
  java=$(readlink -f "$(command -v java)") || return 1
  [[ -x ${java%/*}/keytool ]] && echo "${java%/*}/keytool"
}

# A self-signed certificate for 127.0.0.1 in the broker's keystore, and the same certificate
# as PEM for the clients to trust (ssl.ca.location). For mutual TLS: a client's key and
# self-signed certificate in client.p12 (librdkafka's ssl.keystore.location), a second client's
# as PEM files (ssl.certificate.location, ssl.key.location; openssl, since keytool cannot
# export a key), and the broker's truststore that holds those two certificates only.
write_tls_material() {
  local dir=$1 keytool
  keytool=$(keytool_path) || die "keytool (part of Java 17) is needed for the broker's TLS listeners"
  rm -f "$dir/broker.p12" "$dir/ca.pem" "$dir/client.p12" "$dir/client.pem" "$dir/clients-trust.p12" \
    "$dir/pem-client.pem" "$dir/pem-client.key"
  "$keytool" -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 30 \
    -dname CN=127.0.0.1 -ext SAN=ip:127.0.0.1,dns:localhost \
    -keystore "$dir/broker.p12" -storetype PKCS12 \
    -storepass "$TLS_STORE_PASSWORD" -keypass "$TLS_STORE_PASSWORD" >/dev/null 2>&1 \
    || die "keytool could not make the broker's TLS certificate"
  "$keytool" -exportcert -rfc -alias broker -keystore "$dir/broker.p12" \
    -storepass "$TLS_STORE_PASSWORD" -file "$dir/ca.pem" >/dev/null 2>&1 \
    || die "keytool could not export the broker's certificate"
  "$keytool" -genkeypair -alias client -keyalg RSA -keysize 2048 -validity 30 \
    -dname CN=traptor-test-client -keystore "$dir/client.p12" -storetype PKCS12 \
    -storepass "$TLS_STORE_PASSWORD" -keypass "$TLS_STORE_PASSWORD" >/dev/null 2>&1 \
    || die "keytool could not make the client's TLS certificate"
  "$keytool" -exportcert -rfc -alias client -keystore "$dir/client.p12" \
    -storepass "$TLS_STORE_PASSWORD" -file "$dir/client.pem" >/dev/null 2>&1 \
    || die "keytool could not export the client's certificate"
  "$keytool" -importcert -noprompt -alias client -file "$dir/client.pem" \
    -keystore "$dir/clients-trust.p12" -storetype PKCS12 -storepass "$TLS_STORE_PASSWORD" \
    >/dev/null 2>&1 || die "keytool could not make the broker's truststore"
  command -v openssl >/dev/null || apt_install openssl >&2
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=traptor-test-pem-client \
    -keyout "$dir/pem-client.key" -out "$dir/pem-client.pem" >/dev/null 2>&1 \
    || die "openssl could not make the PEM client certificate"
  "$keytool" -importcert -noprompt -alias pem-client -file "$dir/pem-client.pem" \
    -keystore "$dir/clients-trust.p12" -storetype PKCS12 -storepass "$TLS_STORE_PASSWORD" \
    >/dev/null 2>&1 || die "keytool could not add the PEM client to the broker's truststore"
}

# N distinct free loopback ports, on one line.
distinct_free_ports() {
  local n=$1 port
  local -a ports=()
  while ((${#ports[@]} < n)); do
    port=$(free_port)
    [[ " ${ports[*]} " == *" $port "* ]] || ports+=("$port")
  done
  echo "${ports[*]}"
}

write_kafka_config() {
  local port=$1 controller_port=$2 sasl_port=$3 tls_port=$4 mtls_port=$5 dir=$STATE_DIR/kafka
  mkdir -p "$dir/data"
  write_tls_material "$dir"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port,SASL_PLAINTEXT://127.0.0.1:$sasl_port,SASL_SSL://127.0.0.1:$tls_port,SSL://127.0.0.1:$mtls_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sasl_port,SASL_SSL://127.0.0.1:$tls_port,SSL://127.0.0.1:$mtls_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,OAUTHBEARER
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$dir/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$TLS_STORE_PASSWORD
listener.name.sasl_ssl.ssl.key.password=$TLS_STORE_PASSWORD
listener.name.ssl.ssl.client.auth=required
listener.name.ssl.ssl.keystore.type=PKCS12
listener.name.ssl.ssl.keystore.location=$dir/broker.p12
listener.name.ssl.ssl.keystore.password=$TLS_STORE_PASSWORD
listener.name.ssl.ssl.key.password=$TLS_STORE_PASSWORD
listener.name.ssl.ssl.truststore.type=PKCS12
listener.name.ssl.ssl.truststore.location=$dir/clients-trust.p12
listener.name.ssl.ssl.truststore.password=$TLS_STORE_PASSWORD
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
log.dirs=$dir/data
# One node: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
num.partitions=3
# Tests create consumer groups all the time; do not make each one wait 3s.
group.initial.rebalance.delay.ms=0
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
# Broker and tool logs go to stdout (the broker's is captured in kafka.log).
# The tools run with -Dtraptor.log.level=warn: their INFO lines are noise.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${sys:traptor.log.level:-info}
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = warn
EOF
  # The readiness probe should fail fast and retry, not wait a minute per try.
  cat >"$dir/client.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
  # One script to (re)start the broker, used here and by the tests' outage helpers
  # (tests/support). It returns at once; the broker's pid goes to kafka.pid.
  local heap
  read -ra heap <<<"$KAFKA_HEAP"
  {
    echo '#!/usr/bin/env bash'
    echo '# Starts the test broker in its own session; written by scripts/services.sh.'
    # shellcheck disable=SC2016 # as in spawn(): expanded by the inner bash
    printf 'setsid bash -c %q %q' 'echo $$ >"$0"; exec "$@"' "$STATE_DIR/kafka.pid"
    printf ' %q' java "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true \
      "-Dlog4j2.configurationFile=$dir/log4j2.properties" \
      -cp "$KAFKA_LIB/*" kafka.Kafka "$dir/server.properties"
    printf ' >>%q 2>&1 </dev/null &\n' "$STATE_DIR/kafka.log"
  } >"$dir/run.sh"
  chmod +x "$dir/run.sh"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# java -cp '<lib>/*' <main class> args..., with the quiet log config.
kafka_java() {
  java -Xmx256m -Dtraptor.log.level=warn -Dlog4j2.configurationFile="$STATE_DIR/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB/*" "$@"
}

start_kafka() {
  local port=$1 controller_port=$2 sasl_port=$3 tls_port=$4 mtls_port=$5 dir=$STATE_DIR/kafka started=$SECONDS
  write_kafka_config "$port" "$controller_port" "$sasl_port" "$tls_port" "$mtls_port"
  local cluster_id
  cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  kafka_java kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$dir/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
    --add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
    >"$STATE_DIR/kafka-format.log" 2>&1 \
    || { cat "$STATE_DIR/kafka-format.log" >&2; die "formatting the Kafka log dir failed"; }
  rm -f "$STATE_DIR/kafka.pid"
  bash "$dir/run.sh"
  for _ in $(seq 50); do [[ -s $STATE_DIR/kafka.pid ]] && break; sleep 0.1; done

  # Ready means a client can create a topic, not merely that the port is open.
  # The cheap port check first, so a broker that died is noticed at once.
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  : >"$STATE_DIR/kafka-ready.log"
  until port_open "$port" && kafka_java org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "127.0.0.1:$port" --command-config "$dir/client.properties" \
      --create --if-not-exists --topic traptor-services-ready --partitions 1 --replication-factor 1 \
      >"$STATE_DIR/kafka-ready.log" 2>&1; do
    if ! alive "$STATE_DIR/kafka.pid" || ((SECONDS >= deadline)); then
      log "Kafka did not come up; last broker log lines:"
      tail -n 40 "$STATE_DIR/kafka.log" >&2
      log "last topic command output:"
      tail -n 10 "$STATE_DIR/kafka-ready.log" >&2
      die "Kafka broker not ready after $((SECONDS - started))s (logs in $STATE_DIR)"
    fi
    sleep 0.5
  done
  log "Kafka $KAFKA_VERSION is up on 127.0.0.1:$port (started in $((SECONDS - started))s)"
}

cmd_status() {
  alive "$STATE_DIR/redis.pid" && alive "$STATE_DIR/kafka.pid" && [[ -f $STATE_DIR/env ]]
}

cmd_start() {
  if cmd_status; then
    log "already running (state in $STATE_DIR); run '$0 stop' first for fresh ones"
    cat "$STATE_DIR/env"
    return
  fi
  # Leftovers from a crashed run would confuse stop and the tests.
  [[ -d $STATE_DIR ]] && cmd_stop
  command -v python3 >/dev/null || die "python3 is needed to pick free ports"
  command -v setsid >/dev/null || die "setsid (util-linux) is needed"
  ensure_redis
  fetch_kafka
  mkdir -p "$STATE_DIR"
  # stop deletes the state dir only with this mark, whatever TRAPTOR_SERVICES_DIR says.
  touch "$STATE_DIR/.traptor-services"

  local redis_port kafka_port controller_port sasl_port tls_port mtls_port
  read -r redis_port kafka_port controller_port sasl_port tls_port mtls_port \
    <<<"$(distinct_free_ports 6)"

  # On any failure below, do not leave half the services running (logs stay for a look).
  trap 'stop_group "$STATE_DIR/kafka.pid" Kafka; stop_group "$STATE_DIR/redis.pid" Redis' EXIT
  start_redis "$redis_port"
  start_kafka "$kafka_port" "$controller_port" "$sasl_port" "$tls_port" "$mtls_port"
  trap - EXIT

  cat >"$STATE_DIR/env" <<EOF
TRAPTOR_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/
TRAPTOR_TEST_KAFKA_BROKERS=127.0.0.1:$kafka_port
TRAPTOR_TEST_KAFKA_SASL_BROKERS=127.0.0.1:$sasl_port
TRAPTOR_TEST_KAFKA_SASL_USER=$SASL_USER
TRAPTOR_TEST_KAFKA_SASL_PASSWORD=$SASL_PASSWORD
TRAPTOR_TEST_KAFKA_SCRAM_TLS_BROKERS=127.0.0.1:$tls_port
TRAPTOR_TEST_KAFKA_SCRAM_USER=$SCRAM_USER
TRAPTOR_TEST_KAFKA_SCRAM_PASSWORD=$SCRAM_PASSWORD
TRAPTOR_TEST_KAFKA_CA=$STATE_DIR/kafka/ca.pem
TRAPTOR_TEST_KAFKA_MTLS_BROKERS=127.0.0.1:$mtls_port
TRAPTOR_TEST_KAFKA_CLIENT_KEYSTORE=$STATE_DIR/kafka/client.p12
TRAPTOR_TEST_KAFKA_CLIENT_KEYSTORE_PASSWORD=$TLS_STORE_PASSWORD
TRAPTOR_TEST_KAFKA_CLIENT_CERT_PEM=$STATE_DIR/kafka/pem-client.pem
TRAPTOR_TEST_KAFKA_CLIENT_KEY_PEM=$STATE_DIR/kafka/pem-client.key
TRAPTOR_TEST_KAFKA_HOME=$KAFKA_LIB
TRAPTOR_TEST_KAFKA_CONFIG=$STATE_DIR/kafka/server.properties
TRAPTOR_TEST_SERVICES_DIR=$STATE_DIR
EOF
  cat "$STATE_DIR/env"
}

# Stop a process group by its leader's pid file: TERM, then KILL after a grace period.
stop_group() {
  local pidfile=$1 name=$2 pid
  [[ -s $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if pid_alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    # A paused (SIGSTOP) broker only sees the TERM once it runs again.
    kill -CONT -- "-$pid" 2>/dev/null || true
    for _ in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then
      log "$name did not stop within 10s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

cmd_stop() {
  stop_group "$STATE_DIR/kafka.pid" Kafka
  stop_group "$STATE_DIR/redis.pid" Redis
  if [[ -f $STATE_DIR/.traptor-services ]]; then
    rm -rf "$STATE_DIR"
  elif [[ -d $STATE_DIR ]]; then
    log "not deleting $STATE_DIR: it was not made by this script"
  fi
}

cmd_env() {
  [[ -f $STATE_DIR/env ]] || die "services are not running: run '$0 start' first"
  local key value
  while IFS='=' read -r key value; do printf 'export %s=%q\n' "$key" "$value"; done <"$STATE_DIR/env"
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
