#!/bin/sh
# Start-up replay of an event log (SPEC 9.1, issue 14: 10M events in under 10 s): writes EVENTS decision events
# (2 offers each, over 100,000 profile keys and 20 offers) with make_stream.py into a fresh redis-server
# (MODE redis, the default) or into a file log (MODE file), then starts `offerd serve` on it and reads how long the
# follower took to apply them all before readiness (the "event log replayed" log line, which also gives the keys
# and live counters built). Redis on core 0, offerd on core 1.
#
# usage: benchmarks/live/replay.sh OFFERD_BIN [EVENTS] [redis|file]
#        KEYS=N OFFERS=N (environment): profile keys and offer ids the events cycle through (100000, 20); with 20
#        offers each key sees the same 2 offers (8 live counters), with a count prime to the keys' more.
set -eu
bin=$1
events=${2:-1000000}
mode=${3:-redis}
keys=${KEYS:-100000}
offers=${OFFERS:-20}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
offerd_pid=
redis_pid=
trap 'kill $offerd_pid $redis_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin_port=$(free_port)
case $mode in
redis)
    redis_port=$(free_port)
    taskset -c 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
        >/dev/null 2>&1 &
    redis_pid=$!
    until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done
    python3 "$here/make_stream.py" "$redis_port" offerd:events "$events" "$keys" "$offers"
    log="redis://127.0.0.1:$redis_port"
    ;;
file)
    python3 "$here/make_stream.py" file "$dir/events.log" "$events" "$keys" "$offers"
    log="file:$dir/events.log"
    ;;
*)
    echo "unknown mode $mode (redis or file)" >&2
    exit 2
    ;;
esac
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
    --admin-port "$admin_port" --events "$log" >"$dir/offerd.log" 2>&1 &
offerd_pid=$!
until curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; do
    kill -0 "$offerd_pid" 2>/dev/null || { cat "$dir/offerd.log"; exit 1; }
    sleep 0.05
done
# Readiness is set just before the line is logged.
until grep 'event log replayed' "$dir/offerd.log"; do sleep 0.05; done
ps -o rss= -p "$offerd_pid" | awk '{printf "offerd RSS after replay: %.1f MiB\n", $1 / 1024}'
# CPU time of the whole process up to readiness (start-up included): on a shared machine the wall-clock seconds
# above include waiting for a core, this does not.
awk -v ticks="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf "offerd CPU time up to readiness: %.2f s\n", ($12 + $13) / ticks}' \
    "/proc/$offerd_pid/stat"
