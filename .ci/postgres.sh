# A throwaway PostgreSQL server for the `postgres` feature's tests and bench.
#
# Source it (`source .ci/postgres.sh`) so its exports reach the tests:
#   DATABASE_URL  postgres://postgres@127.0.0.1:PORT/biot_test (trust auth, loopback only)
#   BIOT_PG_CTL   a pg_ctl that runs as the server's (unprivileged) owner
#   BIOT_PGDATA   the server's data directory
#   BIOT_PG_LOG   the server's log file
#   BIOT_PG_TLS_CA  the PEM certificate of the throwaway CA that signed the server's TLS
#                 certificate (valid for the DNS name `localhost` only)
# and call `biot_pg_stop` when done (e.g. `trap biot_pg_stop EXIT`), which stops the
# server and deletes everything it made.
#
# The server speaks TLS and plain alike on the same port (trust auth either way), except
# for the role `biot_tls_scram`, which must log in over TLS with a SCRAM password (the
# channel binding test makes it). Installs PostgreSQL, and openssl to make the
# certificates, with apt-get when they are missing. The server refuses
# to run as root, so as root it runs as the `postgres` OS user, created if absent.
# Safe to source again: a server this script started earlier in the same shell is
# stopped first. Works under `set -euo pipefail` and without it.

biot_pg__say() { printf 'postgres.sh: %s\n' "$*" >&2; }

# The newest PostgreSQL server bin directory, or nothing.
biot_pg__bindir() {
    local dir
    dir="$(for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && printf '%s\n' "$dir"
    done | sort -V | tail -n 1)"
    if [ -z "$dir" ] && command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dir="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
    fi
    printf '%s' "$dir"
}

# Runs a command as the server's owner (cwd: the scratch dir, which that user can read).
biot_pg__as_owner() {
    if [ "$(id -u)" = 0 ]; then
        (cd "$BIOT_PG_TMP" && runuser -u postgres -- "$@")
    else
        (cd "$BIOT_PG_TMP" && "$@")
    fi
}

# Whether something already listens on 127.0.0.1:$1.
biot_pg__port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

biot_pg_stop() {
    if [ -n "${BIOT_PGDATA:-}" ] && [ -n "${BIOT_PG_BINDIR:-}" ] && [ -d "${BIOT_PGDATA}" ]; then
        biot_pg__as_owner "$BIOT_PG_BINDIR/pg_ctl" -D "$BIOT_PGDATA" -m fast -w -t 30 stop \
            >/dev/null 2>&1 || true
    fi
    if [ -n "${BIOT_PG_TMP:-}" ]; then
        rm -rf -- "$BIOT_PG_TMP"
        unset DATABASE_URL BIOT_PG_CTL BIOT_PGDATA BIOT_PG_LOG BIOT_PG_TMP BIOT_PG_BINDIR \
            BIOT_PG_TLS_CA
    fi
    return 0
}

# Makes, in directory $1, a throwaway CA (ca.crt) and a server key and certificate
# (server.key, server.crt) signed by it for the DNS name `localhost` only, no IP
# address: a client that checks names accepts 127.0.0.1 only when told it is `localhost`.
biot_pg__make_tls() {
    local dir="$1"
    (
        set -e
        cd "$dir"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.crt -days 30 -subj "/CN=biot-notifications throwaway CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server.key -out server.csr -subj "/CN=localhost"
        printf '%s\n' "subjectAltName = DNS:localhost" \
            "basicConstraints = critical,CA:FALSE" \
            "keyUsage = critical,digitalSignature" \
            "extendedKeyUsage = serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key \
            -set_serial "0x$(openssl rand -hex 16)" -days 30 -extfile server.ext -out server.crt
        # The CA's key has signed all it will: nothing else may be trusted through it.
        rm -f ca.key server.csr server.ext
        chmod 644 ca.crt server.crt
        chmod 600 server.key
    ) >"$dir/openssl.log" 2>&1
}

biot_pg_start() {
    local bindir port tries
    biot_pg_stop

    bindir="$(biot_pg__bindir)"
    if [ -z "$bindir" ]; then
        if [ "$(id -u)" != 0 ]; then
            biot_pg__say "no PostgreSQL server found and not root: install PostgreSQL first"
            return 1
        fi
        biot_pg__say "installing PostgreSQL with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            postgresql >/dev/null || return 1
        bindir="$(biot_pg__bindir)"
        [ -n "$bindir" ] || { biot_pg__say "PostgreSQL installed but no server binaries found"; return 1; }
    fi
    export BIOT_PG_BINDIR="$bindir"

    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin postgres || return 1
    fi

    if ! command -v openssl >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            biot_pg__say "no openssl (for the TLS certificates) and not root: install openssl first"
            return 1
        fi
        biot_pg__say "installing openssl with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            openssl >/dev/null || return 1
    fi

    export BIOT_PG_TMP
    BIOT_PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/biot-pg.XXXXXX")" || return 1
    chmod 755 "$BIOT_PG_TMP"
    export BIOT_PGDATA="$BIOT_PG_TMP/data"
    export BIOT_PG_LOG="$BIOT_PG_TMP/server.log"
    mkdir -p "$BIOT_PGDATA"
    touch "$BIOT_PG_LOG"
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$BIOT_PG_TMP"
    fi
    chmod 700 "$BIOT_PGDATA"

    # initdb -A trust: trust for local socket and host (loopback) connections alike.
    biot_pg__as_owner "$bindir/initdb" -D "$BIOT_PGDATA" -U postgres -A trust \
        --encoding=UTF8 --no-locale >"$BIOT_PG_TMP/initdb.log" 2>&1 || {
        biot_pg__say "initdb failed:"; cat "$BIOT_PG_TMP/initdb.log" >&2; biot_pg_stop; return 1;
    }

    # TLS: the server's key and certificate in the scratch dir, owned by the server's user
    # (the key 0600, as PostgreSQL demands); the CA certificate readable by all, for tests.
    biot_pg__make_tls "$BIOT_PG_TMP" || {
        biot_pg__say "making the TLS certificates failed:"; cat "$BIOT_PG_TMP/openssl.log" >&2
        biot_pg_stop; return 1;
    }
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$BIOT_PG_TMP/server.key" "$BIOT_PG_TMP/server.crt"
    fi
    cat >>"$BIOT_PGDATA/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = '$BIOT_PG_TMP/server.crt'
ssl_key_file = '$BIOT_PG_TMP/server.key'
EOF
    # First match wins: the SCRAM-over-TLS role's line goes before initdb's trust lines,
    # whose `host` type accepts TLS and plain connections alike.
    biot_pg__as_owner sed -i \
        '1i hostssl all biot_tls_scram 127.0.0.1/32 scram-sha-256' "$BIOT_PGDATA/pg_hba.conf"

    # A throwaway server: durability off, loopback only, sockets in the scratch dir.
    # Settings live in the config so that a plain `pg_ctl start` (the fault test) reuses them.
    port=55432
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        while biot_pg__port_busy "$port"; do port=$((port + 1)); done
        cat >>"$BIOT_PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$BIOT_PG_TMP'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        if biot_pg__as_owner "$bindir/pg_ctl" -D "$BIOT_PGDATA" -l "$BIOT_PG_LOG" -w -t 60 start \
            >/dev/null 2>&1; then
            break
        fi
        biot_pg__say "could not start on port $port (attempt $tries), trying the next one"
        port=$((port + 1))
        [ "$tries" = 10 ] && { tail -n 20 "$BIOT_PG_LOG" >&2; biot_pg_stop; return 1; }
    done

    biot_pg__as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres biot_test || {
        biot_pg__say "createdb failed"; biot_pg_stop; return 1;
    }

    # pg_ctl as the server's owner, for tests that stop and restart the server.
    cat >"$BIOT_PG_TMP/pg_ctl" <<EOF
#!/bin/sh
cd '$BIOT_PG_TMP' || exit 1
if [ "\$(id -u)" = 0 ]; then
    exec runuser -u postgres -- '$bindir/pg_ctl' "\$@"
fi
exec '$bindir/pg_ctl' "\$@"
EOF
    chmod 755 "$BIOT_PG_TMP/pg_ctl"
    export BIOT_PG_CTL="$BIOT_PG_TMP/pg_ctl"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/biot_test"
    export BIOT_PG_TLS_CA="$BIOT_PG_TMP/ca.crt"
    biot_pg__say "PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (TLS too); DATABASE_URL=$DATABASE_URL; BIOT_PG_TLS_CA=$BIOT_PG_TLS_CA"
}

if ! biot_pg_start; then
    biot_pg__say "could not start a PostgreSQL server"
    # Sourced: return to the caller; run directly: exit.
    return 1 2>/dev/null || exit 1
fi
