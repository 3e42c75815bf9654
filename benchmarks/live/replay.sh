#!/bin/sh
# Start-up replay of a Redis event log (SPEC 9.1, issue 14: 10M events in under 10 s): writes EVENTS decision
# events (2 offers each, over 100,000 profile keys and 20 offers) into a fresh redis-server with make_stream.py,
# then starts `offerd serve` on it and reads how long the follower took to apply them all before readiness
# (the "event log replayed" log line). Redis on core 0, offerd on core 1.
#
# usage: benchmarks/live/replay.sh OFFERD_BIN [EVENTS]
set -eu
bin=$1
events=${2:-1000000}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'kill $offerd_pid $redis_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
admin_port=$(free_port)
taskset -c 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    >/dev/null 2>&1 &
redis_pid=$!
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done
python3 "$here/make_stream.py" "$redis_port" offerd:events "$events"
python3 - "$dir/catalog.json" <<'PY'
import json, sys
offers = [{"id": f"o{n}", "status": "approved", "priority": n, "tags": ["t"], "capping": [{"limit": 1000}],
           "representations": [{"placement": "web", "content": f"o{n}"}]} for n in range(20)]
json.dump({"version": "replay", "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
           "offers": offers, "collections": [{"id": "all", "anyTags": ["t"]}],
           "decisions": [{"id": "d", "status": "live",
                          "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]}]}]},
          open(sys.argv[1], "w"))
PY
: > "$dir/profiles.jsonl"
"$bin" snapshot build --input "$dir/profiles.jsonl" --output "$dir/profiles.snap" >/dev/null
taskset -c 1 "$bin" serve --catalog "$dir/catalog.json" --snapshot "$dir/profiles.snap" --port 0 \
    --admin-port "$admin_port" --events "redis://127.0.0.1:$redis_port" >"$dir/offerd.log" 2>&1 &
offerd_pid=$!
until curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; do sleep 0.05; done
grep 'event log replayed' "$dir/offerd.log"
ps -o rss= -p "$offerd_pid" | awk '{printf "offerd RSS after replay: %.0f MiB\n", $1 / 1024}'
