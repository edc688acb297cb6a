# Stage timing for .ci/run and scripts/test.sh (sourced). `stage NAME CMD...` runs CMD and, when
# RIPTIDE_STAGE_LOG names a file, appends "NAME SECONDS" to it; `stage_report` prints the table
# (and the stage that was running if the script is exiting on a failure).
stage() {
    local name=$1
    shift
    local t0=$SECONDS
    [ -n "${RIPTIDE_STAGE_LOG:-}" ] && echo "$name running $t0" >>"$RIPTIDE_STAGE_LOG"
    "$@"
    [ -n "${RIPTIDE_STAGE_LOG:-}" ] && echo "$name $((SECONDS - t0))" >>"$RIPTIDE_STAGE_LOG"
    return 0
}

stage_report() {
    [ -n "${RIPTIDE_STAGE_LOG:-}" ] && [ -f "$RIPTIDE_STAGE_LOG" ] || return 0
    echo "== stage durations =="
    awk '
        $2 == "running" { running[$1] = 1; order[++n] = $1; next }
        { took[$1] = $2; delete running[$1] }
        END {
            total = 0
            for (i = 1; i <= n; i++) {
                s = order[i]
                if (s in took) { printf "  %-12s %5d s (%dm%02ds)\n", s, took[s], took[s] / 60, took[s] % 60; total += took[s] }
                else printf "  %-12s FAILED or interrupted\n", s
            }
            printf "  %-12s %5d s (%dm%02ds)\n", "total", total, total / 60, total % 60
        }' "$RIPTIDE_STAGE_LOG"
}
