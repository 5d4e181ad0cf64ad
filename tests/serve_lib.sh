# tests/serve_lib.sh: starting and stopping `btrm serve` in the background,
# for tests/serve.sh and tests/serve-finetune.sh (sourced after lib.sh).

# start NAME ARGS...: btrm serve in the background; sets PID_NAME and PORT_NAME
start() {
    local name=$1; shift
    rm -f port-$name
    "$BTRM" serve "$@" --port 0 --port-file port-$name >serve-$name.log 2>&1 &
    eval "PID_$name=$!"
    for _ in $(seq 100); do [ -s port-$name ] && break; sleep 0.1; done
    eval "PORT_$name=$(cat port-$name 2>/dev/null || echo 0)"
}
# stop NAME: SIGTERM, wait; sets rc
stop() {
    local pid; eval "pid=\$PID_$1"
    kill -TERM "$pid" 2>/dev/null
    rc=0; wait "$pid" || rc=$?
}
