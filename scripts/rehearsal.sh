#!/usr/bin/env bash
# The zero-downtime cutover, rehearsed end to end (issue 12, "Done when"; docs/migrating.md).
#
# Seed 002's five phases on a sample corpus of the chat app's JSON tree, with a
# Python app (test/fixtures/python/sync_writer.py: open('w') + json.dump, no
# lock, no rename) still writing during phases 1 and 2:
#   1. dual write   `pgferry sync --follow` carries every write of the app to PostgreSQL
#   2. backfill     `pgferry import` of the whole tree while the app and sync go on
#   3. reads        verify clean, then the API serves from PostgreSQL (STORAGE_MODE=postgres)
#   4. stop JSON    the app stopped; sync drained and stopped; verify clean again
#   5. archive      `pgferry archive --remove`: checked tar.gz, files removed after a clean verify;
#                   then `archive restore` into a scratch dir verifies too (the rollback works)
#
#   scripts/rehearsal.sh                         # local PostgreSQL (embedded) under a temp dir
#   DATABASE_URL=postgres://… scripts/rehearsal.sh
#   WRITER_SECONDS=20 WRITER_RATE=50 KEEP=1 scripts/rehearsal.sh
#
# Exits 0 and prints "rehearsal: OK" when every phase passed.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
NODE="${NODE:-$REPO/node_modules/.bin/node}"
PYTHON="${PYTHON:-python3}"
WRITER_SECONDS="${WRITER_SECONDS:-10}"
WRITER_RATE="${WRITER_RATE:-50}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgferry-rehearsal-XXXXXX")"
chmod 755 "$WORK" # the embedded server's initdb runs as another user
DATA="$WORK/data"
export DATA_DIR="$WORK/pgferry" # the embedded PostgreSQL's home, when DATABASE_URL=embedded
export DATABASE_URL="${DATABASE_URL:-embedded}"
export LOG_LEVEL="${LOG_LEVEL:-warn}"
pids=()

pgferry() { "$NODE" "$REPO/bin/pgferry.js" "$@"; }
# Long-running ones run in a session of their own (setsid, not through a shell function, so
# that $! is the process itself): a signal for one of them never reaches this script.
PGFERRY_BG=(setsid "$NODE" "$REPO/bin/pgferry.js")
say() { printf '\n== %s\n' "$*"; }
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
# Killed (a test's timeout, Ctrl-C): still stop the background processes, which run in sessions of their own.
trap 'exit 143' TERM
trap 'exit 130' INT

# Verify until clean (sync catching up), at most $1 seconds.
verify_until_clean() {
  local deadline=$((SECONDS + $1))
  until pgferry verify --from "$DATA" >"$WORK/verify.out" 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then cat "$WORK/verify.out"; return 1; fi
    sleep 1
  done
  tail -n 1 "$WORK/verify.out"
}

if [ "$DATABASE_URL" = embedded ]; then
  # One process owns the local server for the whole rehearsal, and every command connects to it
  # (a command that owned it would stop it, and exit, on the signal that ends it).
  setsid "$NODE" --input-type=module -e "
    import { startEmbeddedPostgres } from '$REPO/src/db/embedded.ts';
    const server = await startEmbeddedPostgres({ clusterDir: '$WORK/postgres', persistent: false });
    console.log(server.url);
    setInterval(() => {}, 1 << 30);" >"$WORK/postgres.url" 2>"$WORK/postgres.log" &
  pids+=("$!")
  for _ in $(seq 1 300); do [ -s "$WORK/postgres.url" ] && break; sleep 0.2; done
  DATABASE_URL="$(head -n 1 "$WORK/postgres.url")"
  export DATABASE_URL
fi

say "0. before: the app's JSON tree, and an empty database"
pgferry sample-data "$DATA" --users 20 --conversations 10 --messages 8 >/dev/null
find "$DATA" -name '*.json' | wc -l | xargs echo "json files:"
pgferry db up >/dev/null

say "1. dual write: the app writes JSON as always; pgferry sync --follow carries each write to PostgreSQL"
"$PYTHON" "$REPO/test/fixtures/python/sync_writer.py" "$DATA" "$WRITER_SECONDS" "$WRITER_RATE" 1 40 >"$WORK/writer.out" &
writer=$!
pids+=("$writer")
LOG_LEVEL=info "${PGFERRY_BG[@]}" sync --from "$DATA" --follow --rescan 5 >"$WORK/sync.out" 2>"$WORK/sync.log" &
sync=$!
pids+=("$sync")
sleep 2

say "2. backfill: pgferry import of the whole tree, while the app and sync go on"
# import reads each file once: one the app is rewriting at that moment is reported (exit 1) and
# left to sync, which loads it when the write is complete. The import lock makes sync wait meanwhile.
pgferry import --from "$DATA" >"$WORK/import.out" 2>&1 || echo "(import exit $?: files caught mid-write are reported; sync loads them)"
grep -A 3 '^import summary' "$WORK/import.out"
wait "$writer"
echo "app: $(cat "$WORK/writer.out") — now stopped"

say "3. reads from PostgreSQL: verify clean first (sync catches up), then serve from PostgreSQL"
verify_until_clean 60
PORT=$((20000 + RANDOM % 20000))
STORAGE_MODE=postgres AUTH_MODE=dev HOST=127.0.0.1 PORT=$PORT "${PGFERRY_BG[@]}" serve >"$WORK/serve.log" 2>&1 &
server=$!
pids+=("$server")
user="$(ls "$DATA/conversations" | head -n 1)"
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
count="$(curl -fsS -H "X-User-Id: $user" "http://127.0.0.1:$PORT/v1/conversations?limit=100" | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["items"] if isinstance(d, dict) else d))')"
files="$(ls "$DATA/conversations/$user" | wc -l)"
echo "user $user: $count conversations served from PostgreSQL, $files files"
[ "$count" -eq "$files" ]
kill "$server"
wait "$server" || true

say "4. stop writing JSON: sync drained and stopped (SIGTERM); verify clean again"
kill -TERM "$sync"
wait "$sync"
cat "$WORK/sync.out"
grep '"sync lag"' "$WORK/sync.log" | tail -n 1 || true
pgferry verify --from "$DATA" | tail -n 1

say "5. archive: a checked tar.gz, then the JSON files removed after a clean verify"
pgferry archive --from "$DATA" --to "$WORK/json-archive.tar.gz" --remove
left="$(find "$DATA" -name '*.json' | wc -l)"
echo "json files left: $left"
[ "$left" -eq 0 ]
pgferry archive restore "$WORK/json-archive.tar.gz" --to "$WORK/restored"
pgferry verify --from "$WORK/restored" | tail -n 1

printf '\nrehearsal: OK\n'
