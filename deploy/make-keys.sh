#!/usr/bin/env bash
# Creates the secrets the split deployment needs in DIR: the hub's caller-token key pair
# (private half for gateways, public half for core) and a database password.
set -euo pipefail
DIR="${1:?usage: make-keys.sh DIR}"
mkdir -p "$DIR"
umask 077
SIGESS="${SIGESS_BIN:-sigess}"
# `sigess token` creates the key if missing and prints the public half on request.
"$SIGESS" token --signing-key "$DIR/hub-signing-key.pem" --print-public-key --ttl 1 \
  | sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' > "$DIR/hub-public-key.pem"
[ -f "$DIR/db_password" ] || head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > "$DIR/db_password"
printf 'postgres:5432:sigess:sigess:%s\n' "$(cat "$DIR/db_password")" > "$DIR/pgpass"
echo "secrets written to $DIR"
