#!/usr/bin/env bash
# Make sure the shared MariaDB (127.0.0.1:3306), PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) the integration tests use
# are up; start them the way this machine starts them if they have stopped. Never stops anything.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 3306 && command -v mariadbd >/dev/null 2>&1; then
    echo "MariaDB is not answering on 3306: starting it"
    start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd)" || true
fi
if ! port_open 6379 && command -v redis-server >/dev/null 2>&1; then
    echo "Redis is not answering on 6379: starting it"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL is not answering on 5432: starting it"
    version=$(ls /etc/postgresql 2>/dev/null | head -n 1)
    [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 30); do
    port_open 3306 && port_open 5432 && port_open 6379 && exit 0
    sleep 1
done
echo "warning: MariaDB, PostgreSQL or Redis is still down; integration tests will fail under CI=true" >&2
exit 0
