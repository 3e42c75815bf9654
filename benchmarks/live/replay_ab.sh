#!/bin/sh
# The start-up replay of replay.sh for several builds side by side: writes the log once (the same bytes for every
# build), then replays it with each binary in turn, ROUNDS times (before, after, before, after, ...), so that the
# builds are compared on the same data and at nearby moments of a shared machine. Redis on core 0 (MODE redis),
# offerd on core 1. Prints one line per run: round, binary, the follower's replay seconds (wall clock, from the
# "event log replayed" log line), the process's CPU time up to readiness, and its RSS after the replay.
#
# usage: benchmarks/live/replay_ab.sh BIN[,BIN...] [EVENTS] [redis|file] [ROUNDS]
#        KEYS=N OFFERS=N as for replay.sh.
set -eu
bins=$1
events=${2:-1000000}
mode=${3:-redis}
rounds=${4:-3}
first_bin=$(echo "$bins" | cut -d, -f1)
setup_bin=$first_bin
. "$(cd "$(dirname "$0")" && pwd)/replay_setup.sh"
ticks=$(getconf CLK_TCK)
round=1
while [ "$round" -le "$rounds" ]; do
    for bin in $(echo "$bins" | tr , ' '); do
        admin_port=$(free_port)
        # Emptied here, not by the server's redirection (that happens in the child, after this shell may already
        # have read the previous run's line).
        : >"$dir/offerd.log"
        # A file log is locked by the server that opens it: each run's server is stopped before the next starts.
        taskset -c 1 "$bin" serve --catalog "$dir/catalog.json" --snapshot "$dir/profiles.snap" --port 0 \
            --admin-port "$admin_port" --events "$log" >>"$dir/offerd.log" 2>&1 &
        offerd_pid=$!
        until grep -q 'event log replayed' "$dir/offerd.log"; do
            kill -0 "$offerd_pid" 2>/dev/null || { cat "$dir/offerd.log"; exit 1; }
            sleep 0.05
        done
        # awk reads the seconds whatever their form (a short replay logs them as 9.9e-05).
        seconds=$(grep 'event log replayed' "$dir/offerd.log" | sed 's/.*seconds="\([^ ]*\) seconds".*/\1/' |
            awk '{printf "%.2f", $1}')
        cpu=$(awk -v ticks="$ticks" '{sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / ticks}' "/proc/$offerd_pid/stat")
        rss=$(ps -o rss= -p "$offerd_pid" | awk '{printf "%.1f", $1 / 1024}')
        printf 'round %d  %s  replay %s s  cpu %s s  rss %s MiB\n' "$round" "$bin" "$seconds" "$cpu" "$rss"
        kill "$offerd_pid"
        # A server that does not stop within 10 s (it should in well under one) is killed: the next run needs the
        # file log's lock.
        waited=0
        while kill -0 "$offerd_pid" 2>/dev/null && [ "$waited" -lt 200 ]; do
            sleep 0.05
            waited=$((waited + 1))
        done
        kill -KILL "$offerd_pid" 2>/dev/null || true
        wait "$offerd_pid" 2>/dev/null || true
        offerd_pid=
    done
    round=$((round + 1))
done
