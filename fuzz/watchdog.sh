#!/bin/bash
# fuzz/watchdog.sh PID [STALL_SECONDS] [LOG]: watches the jobs of a
# fork-mode libFuzzer campaign (the fuzz-* processes below PID: libFuzzer
# starts each through `sh -c`, which is left alone) and kills with SIGKILL
# a job whose CPU time has not moved for STALL_SECONDS (default 45), naming
# it in LOG (default stderr). Exits when PID does.
#
# Why: libFuzzer's timeout handler (AlarmCallback -> DumpCurrentUnit) calls
# malloc from SIGALRM; when the alarm lands while the job is inside ASan's
# allocator, the handler waits for a lock its own thread holds, and the job
# sleeps forever at 0% CPU. In fork mode the parent then waits for it
# forever too: a campaign of `modelfile` stalled that way with 1.7 GB
# resident until it was killed by hand (docs/reliability.md). A job that
# computes, however slowly, is left alone: only one that no longer runs at
# all is killed, and libFuzzer's parent counts it as a crashed job and goes on.
set -u
parent=$1 stall=${2:-45} log=${3:-/dev/stderr}
declare -A last_cpu last_change
while kill -0 "$parent" 2>/dev/null; do
    now=$(date +%s)
    declare -A ppid_of=() comm_of=() line_of=()
    for stat in /proc/[0-9]*/stat; do
        { read -r line < "$stat"; } 2>/dev/null || continue
        pid=${stat#/proc/}; pid=${pid%/stat}
        comm=${line#*(}; comm=${comm%)*}
        # fields after the ")" of comm: state ppid ... utime(14) stime(15)
        rest=${line##*) }
        read -r _ ppid _ <<< "$rest"
        ppid_of[$pid]=$ppid comm_of[$pid]=$comm line_of[$pid]=$rest
    done
    for pid in "${!line_of[@]}"; do
        [[ ${comm_of[$pid]} == fuzz-* ]] || continue
        p=${ppid_of[$pid]} up=${ppid_of[${ppid_of[$pid]}]:-}
        [ "$p" = "$parent" ] || [ "$up" = "$parent" ] || continue
        read -r state _ _ _ _ _ _ _ _ _ _ utime stime _ <<< "${line_of[$pid]}"
        [ "$state" = Z ] && continue
        cpu=$((utime + stime))
        if [ "${last_cpu[$pid]:-}" != "$cpu" ]; then
            last_cpu[$pid]=$cpu last_change[$pid]=$now
        elif [ $((now - ${last_change[$pid]})) -ge "$stall" ]; then
            echo "watchdog: $(date -u +%H:%M:%S) job $pid of $parent used no CPU for $stall s" \
                 "(libFuzzer's timeout handler deadlocked in malloc): killed" >> "$log"
            kill -KILL "$pid" 2>/dev/null
            unset "last_cpu[$pid]" "last_change[$pid]"
        fi
    done
    sleep 5
done
