#!/usr/bin/env bash
# The services a full test run needs, on this machine:
#   scripts/services.sh up       the local Slurm cluster (scripts/slurm_local.sh) and PostgreSQL on 127.0.0.1:5432
#                                (Debian's postgresql; database and role `dlf`, password `dlf`: the Optuna study's
#                                storage postgresql://dlf:dlf@127.0.0.1:5432/dlf)
#   scripts/services.sh down     stop both (only what `up` started of PostgreSQL)
#   scripts/services.sh status   one line each; exit 0 when both are up
# As root, with apt (installs what is missing). No systemd: the daemons are started directly.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${DLF_SLURM_STATE:-/var/lib/dlf-slurm}
PG_PACKAGES=(postgresql)

die() { echo "services: error: $*" >&2; exit 2; }

pg_cluster() { pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1, $2}'; }  # "<version> <name>" of the first cluster

pg_up() {
    if ! command -v pg_lsclusters >/dev/null || [ -z "$(pg_cluster)" ]; then
        [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || die "PostgreSQL not installed: apt-get install ${PG_PACKAGES[*]} (as root)"
        { apt-get install -y -q "${PG_PACKAGES[@]}" || { apt-get update -q && apt-get install -y -q "${PG_PACKAGES[@]}"; }; } \
            >/tmp/dlf-services-apt.log 2>&1 || die "apt-get install ${PG_PACKAGES[*]} failed: see /tmp/dlf-services-apt.log"
    fi
    read -r ver name <<<"$(pg_cluster)"
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        pg_ctlcluster "$ver" "$name" start -- -o "-c listen_addresses=127.0.0.1" >/dev/null
        mkdir -p "$STATE" && echo "$ver $name" >"$STATE/postgres.started"
        for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
        pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up (pg_lsclusters; /var/log/postgresql/)"
    fi
    runuser -u postgres -- psql -q -tAc "SELECT 1 FROM pg_roles WHERE rolname='dlf'" | grep -q 1 \
        || runuser -u postgres -- psql -q -c "CREATE ROLE dlf LOGIN PASSWORD 'dlf'"
    runuser -u postgres -- psql -q -tAc "SELECT 1 FROM pg_database WHERE datname='dlf'" | grep -q 1 \
        || runuser -u postgres -- createdb -O dlf dlf
    echo "services: postgresql up: postgresql://dlf:dlf@127.0.0.1:5432/dlf"
}

pg_down() {
    [ -s "$STATE/postgres.started" ] || return 0
    read -r ver name <"$STATE/postgres.started"
    pg_ctlcluster "$ver" "$name" stop -m fast >/dev/null 2>&1 || true
    rm -f "$STATE/postgres.started"
    echo "services: postgresql down"
}

case "${1:-}" in
    up) scripts/slurm_local.sh up && pg_up ;;
    down) rc=0; scripts/slurm_local.sh down || rc=$?; pg_down; exit $rc ;;
    status)
        rc=0; s=$(scripts/slurm_local.sh status) || rc=3; echo "slurm: $s"
        if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then echo "postgresql: up"; else echo "postgresql: down"; rc=3; fi
        exit $rc ;;
    *) echo "usage: scripts/services.sh up|down|status" >&2; exit 2 ;;
esac
