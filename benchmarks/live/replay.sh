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
setup_bin=$bin
. "$(cd "$(dirname "$0")" && pwd)/replay_setup.sh"
admin_port=$(free_port)
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
