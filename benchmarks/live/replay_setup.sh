# Sourced by replay.sh and replay_ab.sh (sh): the log both replay, and a catalog and an empty snapshot to serve it
# with. Takes `mode` (redis or file), `events` and `setup_bin` (an offerd binary, for `snapshot build`); sets
# `here`, `dir` (removed at exit, with the servers `offerd_pid` and `redis_pid` stopped), `free_port` and `log`
# (the `--events` value). Redis, when asked, runs on core 0 without persistence.
keys=${KEYS:-100000}
offers=${OFFERS:-20}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
offerd_pid=
redis_pid=
trap 'kill $offerd_pid $redis_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
"$setup_bin" snapshot build --input "$dir/profiles.jsonl" --output "$dir/profiles.snap" >/dev/null
