#!/usr/bin/env bash
# Throw-away PostgreSQL and Redis on 127.0.0.1 for the distributed configuration's tests.
#
#   eval "$(.ci/services.sh start)"   # starts both, prints `export DATABASE_URL=... REDIS_URL=...`
#   make test
#   .ci/services.sh stop              # stops both and deletes their data
#
# Both run from a private directory on free ports, so they never touch (or clash with) a system
# cluster on 5432 or a redis on 6379. Works as root (PostgreSQL then runs as the `postgres`
# user, since it refuses to run as root) and as an ordinary user. Progress goes to stderr so
# that stdout carries only the exports.
set -euo pipefail

STATE_DIR="${QUAY_SERVICES_DIR:-${TMPDIR:-/tmp}/quay-services-$(id -u)}"
ENV_FILE="$STATE_DIR/env"
DB_NAME=quay
DB_USER=quay

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pg_bin() {
    local dir
    if [[ -n "${PG_BIN:-}" ]]; then
        echo "$PG_BIN"
        return
    fi
    # Debian keeps the server binaries off PATH, one directory per major version; take the newest.
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -z "$dir" ]] && command -v pg_ctl >/dev/null; then
        dir=$(dirname "$(command -v pg_ctl)")
    fi
    [[ -n "$dir" && -x "$dir/pg_ctl" ]] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
    echo "$dir"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# PostgreSQL refuses to run as root: run its programs as `postgres` then.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [[ -f "$ENV_FILE" ]] || return 1
    # shellcheck disable=SC1090
    source "$STATE_DIR/ports"
    as_pg "$(pg_bin)/pg_ctl" -D "$STATE_DIR/pg/data" status >/dev/null 2>&1 || return 1
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

start() {
    if running; then
        log "already running (state in $STATE_DIR)"
        cat "$ENV_FILE"
        return
    fi
    stop_quietly
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    local bin pg_port redis_port password
    bin=$(pg_bin)
    pg_port=$(free_port)
    redis_port=$(free_port)
    while [[ "$redis_port" == "$pg_port" ]]; do redis_port=$(free_port); done
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

    mkdir -p "$STATE_DIR/pg" "$STATE_DIR/redis"
    chmod 700 "$STATE_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "user postgres missing (apt-get install postgresql)"
        # The postgres user must reach its data directory through the state directory.
        chmod 711 "$STATE_DIR"
        chown postgres: "$STATE_DIR/pg"
    fi
    printf 'PG_PORT=%s\nREDIS_PORT=%s\n' "$pg_port" "$redis_port" >"$STATE_DIR/ports"

    log "PostgreSQL ($("$bin/postgres" --version | awk '{print $3}')) on 127.0.0.1:$pg_port"
    printf '%s\n' "$password" | as_pg tee "$STATE_DIR/pg/pwfile" >/dev/null
    # The database owner is a superuser so pytest-django (and e2e fixtures) can CREATE DATABASE.
    as_pg "$bin/initdb" -D "$STATE_DIR/pg/data" -U "$DB_USER" --pwfile="$STATE_DIR/pg/pwfile" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$STATE_DIR/pg/initdb.log" 2>&1 \
        || { cat "$STATE_DIR/pg/initdb.log" >&2; die "initdb failed"; }
    as_pg rm -f "$STATE_DIR/pg/pwfile"
    # Durability is worthless for a throw-away test cluster and fsync dominates test time.
    # Live-server tests run several gunicorn workers with persistent connections: allow plenty.
    as_pg "$bin/pg_ctl" -D "$STATE_DIR/pg/data" -l "$STATE_DIR/pg/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$STATE_DIR/pg \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        >/dev/null || { tail -n 30 "$STATE_DIR/pg/server.log" >&2; die "PostgreSQL did not start"; }
    PGPASSWORD="$password" "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U "$DB_USER" -d postgres -q -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE $DB_NAME" >&2 || die "could not create database $DB_NAME"

    log "Redis ($(redis-server --version | awk '{sub("v=", "", $3); print $3}')) on 127.0.0.1:$redis_port"
    redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize yes --dir "$STATE_DIR/redis" \
        --pidfile "$STATE_DIR/redis/redis.pid" --logfile "$STATE_DIR/redis/redis.log" \
        --save "" --appendonly no >&2
    local i
    for i in $(seq 50); do
        redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
        [[ $i -eq 50 ]] && { tail -n 30 "$STATE_DIR/redis/redis.log" >&2; die "Redis did not start"; }
        sleep 0.1
    done

    {
        echo "export DATABASE_URL=postgres://$DB_USER:$password@127.0.0.1:$pg_port/$DB_NAME"
        echo "export REDIS_URL=redis://127.0.0.1:$redis_port/0"
    } >"$ENV_FILE"
    chmod 600 "$ENV_FILE"
    cat "$ENV_FILE"
}

stop_quietly() {
    [[ -d "$STATE_DIR" ]] || return 0
    if [[ -f "$STATE_DIR/ports" ]]; then
        # shellcheck disable=SC1090
        source "$STATE_DIR/ports"
        if [[ -f "$STATE_DIR/pg/data/postmaster.pid" ]]; then
            as_pg "$(pg_bin)/pg_ctl" -D "$STATE_DIR/pg/data" -m fast -w stop >/dev/null 2>&1 || true
        fi
        if [[ -f "$STATE_DIR/redis/redis.pid" ]]; then
            redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
            local pid
            pid=$(cat "$STATE_DIR/redis/redis.pid" 2>/dev/null || true)
            # Only if that pid still is our redis (pid files outlive their process).
            if [[ -n "$pid" ]] && grep -q "redis-server" "/proc/$pid/cmdline" 2>/dev/null; then
                kill "$pid" 2>/dev/null || true
            fi
        fi
    fi
    rm -rf "$STATE_DIR"
}

stop() {
    if [[ -d "$STATE_DIR" ]]; then
        stop_quietly
        log "stopped PostgreSQL and Redis, removed $STATE_DIR"
    else
        log "nothing to stop ($STATE_DIR does not exist)"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) [[ -f "$ENV_FILE" ]] && cat "$ENV_FILE" || die "not running" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
