#!/usr/bin/env bash
# The main job on the embedded default: install cdir, register two local folders as providers
# (SQLite catalog, no server), put a sample tree on both, show `ls` and `status`, then change
# files inside the provider folders behind cdir's back and let `cdir sync` reconcile them.
# Re-runnable: it starts from a fresh demo home each time.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
demo="$PWD/.cache/demo"
rm -rf "$demo" && mkdir -p "$demo/data/raw" "$demo/data/models"
export CDIR_HOME="$demo/home" CDIR_VAULT_PASSPHRASE="demo passphrase"
printf 'id,value\n1,0.5\n2,0.7\n' > "$demo/data/raw/train.csv"
printf 'id,value\n3,0.9\n' > "$demo/data/raw/test.csv"
head -c 200000 /dev/urandom > "$demo/data/models/weights.bin"
echo "notes about the experiment" > "$demo/data/README.txt"
cdir=.venv/bin/cdir
set -x
$cdir provider add laptop --kind local --root "$demo/laptop"
$cdir provider add archive --kind local --root "$demo/archive"
$cdir put "$demo/data/" /proj/data -r --to laptop,archive
$cdir ls /proj/data -l
$cdir status /proj -r
$cdir search / '*.csv' -r
# sync: a file changed inside one provider's folder behind cdir's back reaches the other
echo "2,0.8" >> "$demo/laptop/proj/data/raw/train.csv"
$cdir sync --dry-run
$cdir sync
cat "$demo/archive/proj/data/raw/train.csv"
# a conflict: both folders changed; the newer wins everywhere, the other is kept as a copy
echo "archive's notes" > "$demo/archive/proj/data/README.txt"
touch -d '1 hour ago' "$demo/archive/proj/data/README.txt"
echo "laptop's notes, newer" > "$demo/laptop/proj/data/README.txt"
$cdir sync
$cdir ls /proj/data
$cdir status /proj/data -r
# the REST service: later commands become its clients; curl reads a file through it
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$cdir service start --port "$port" --no-daemon
trap '$cdir service stop >/dev/null 2>&1 || true' EXIT  # also when a step fails
$cdir ls /proj/data/raw
# the token goes to curl in a 0600 header file: the trace of this script never shows it
{ set +x; } 2>/dev/null
(umask 077; echo "Authorization: Bearer $($cdir service token)" > "$demo/auth.header")
set -x
curl -s -H @"$demo/auth.header" "http://127.0.0.1:$port/api/v1/files/proj/data/raw/train.csv"
curl -s -H @"$demo/auth.header" -r 0-3 "http://127.0.0.1:$port/api/v1/replicas/archive/proj/data/raw/train.csv"; echo
curl -s "http://127.0.0.1:$port/api/v1/entries/proj"; echo
$cdir service stop
