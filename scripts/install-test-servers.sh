#!/usr/bin/env bash
# Installs what the test suite needs beyond pip: OpenSSH's sshd, Azurite (npm) and a PostgreSQL
# server when none answers on 127.0.0.1:5432. Idempotent; safe to run on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# SFTP: OpenSSH server (the fixture runs its own sshd with its own config and port)
[ -x /usr/sbin/sshd ] || apt_install openssh-server
$SUDO mkdir -p /run/sshd

# Azure: Azurite 3.35.0 (newer releases need Node 22)
if [ ! -x .cache/azurite/node_modules/.bin/azurite-blob ]; then
  command -v npm >/dev/null || apt_install nodejs npm
  mkdir -p .cache/azurite
  npm install --silent --no-audit --no-fund --prefix .cache/azurite azurite@3.35.0 >/dev/null
fi

# PostgreSQL for the catalog tests: use the one on 127.0.0.1:5432, else install and start one
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if pg_isready -q -h 127.0.0.1 -p 5432; then
  # trust auth for local test connections and a `test` database, as on the project's machines
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
    || $SUDO -u postgres psql -q -c "CREATE DATABASE test" 2>/dev/null || true
fi
echo "test servers installed"
