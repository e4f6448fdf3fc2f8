# Throwaway services for the tests, on 127.0.0.1 only (sourced by scripts/test.sh, or by hand:
#   source scripts/services.sh && start_test_services; ...; stop_test_services).
# PostgreSQL: a fresh cluster from Debian's postgresql package; S3: moto's server. Both live under one temporary
# folder that stop_test_services removes; the exported URLs are what the tests read.

start_test_services() {
  FOVEA_SERVICES_DIR="$(mktemp -d /tmp/fovea-services.XXXXXX)"
  export FOVEA_SERVICES_DIR
  chmod 755 "$FOVEA_SERVICES_DIR"   # the postgres user must reach its cluster below it
  local pg_bin
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [ -x "$pg_bin/initdb" ] || { echo "PostgreSQL is not installed (scripts/setup.sh --test installs it)" >&2; return 1; }
  local pg_port s3_port
  pg_port="$(free_port)"; s3_port="$(free_port)"
  mkdir -p "$FOVEA_SERVICES_DIR/pg"
  chown postgres: "$FOVEA_SERVICES_DIR/pg"
  runuser -u postgres -- "$pg_bin/initdb" -D "$FOVEA_SERVICES_DIR/pg/data" -U postgres -A trust --no-sync >/dev/null || return 1
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$FOVEA_SERVICES_DIR/pg/data" -l "$FOVEA_SERVICES_DIR/pg/log" -w \
    -o "-p $pg_port -k $FOVEA_SERVICES_DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=on" start >/dev/null || return 1
  export FOVEA_TEST_POSTGRES="postgres://postgres@127.0.0.1:$pg_port/postgres"
  # moto keeps buckets in memory; any credentials sign requests.
  (moto_server -H 127.0.0.1 -p "$s3_port" >"$FOVEA_SERVICES_DIR/moto.log" 2>&1 & echo $! >"$FOVEA_SERVICES_DIR/moto.pid")
  export FOVEA_TEST_S3="http://127.0.0.1:$s3_port"
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $s3_port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  echo "==> test services: PostgreSQL on 127.0.0.1:$pg_port, S3 (moto) on 127.0.0.1:$s3_port"
}

stop_test_services() {
  [ -n "${FOVEA_SERVICES_DIR:-}" ] && [ -d "$FOVEA_SERVICES_DIR" ] || return 0
  local pg_bin
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$FOVEA_SERVICES_DIR/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  [ -f "$FOVEA_SERVICES_DIR/moto.pid" ] && kill "$(cat "$FOVEA_SERVICES_DIR/moto.pid")" 2>/dev/null || true
  rm -rf "$FOVEA_SERVICES_DIR"
}

free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}
