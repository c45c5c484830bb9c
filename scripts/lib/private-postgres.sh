# Sourced by the test scripts: a private PostgreSQL cluster for one test run (a free port, a temporary
# directory), never the machine's shared server. After `start_private_postgres`, PG_URL points at its
# database `test`; `stop_private_postgres` stops it and removes its directory (call it from the
# caller's EXIT trap). Needs Debian's postgresql binaries under /usr/lib/postgresql/*/bin.
PG_STOP=()
PG_DIR=""
start_private_postgres() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$bin/initdb" ] || return 1
    PG_DIR=$(mktemp -d /tmp/melv-pg.XXXXXX)
    chmod 755 "$PG_DIR"
    PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # initdb refuses to run as root: the cluster belongs to the postgres account when we are root.
    local as=()
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$PG_DIR"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U root --no-sync >/dev/null || return 1
    # fsync off: the tests crash brokers, gateways and workers, never this cluster.
    "${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || return 1
    PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate stop)
    psql "postgres://root@127.0.0.1:$PG_PORT/postgres" -qc "CREATE DATABASE test" || return 1
    PG_URL="postgres://root@127.0.0.1:$PG_PORT/test"
}
stop_private_postgres() {
    [ ${#PG_STOP[@]} -eq 0 ] || "${PG_STOP[@]}" >/dev/null 2>&1
    [ -z "$PG_DIR" ] || rm -rf "$PG_DIR"
    PG_STOP=()
    PG_DIR=""
}
