#!/bin/bash
# The Spark image's entrypoint: the base image's /opt/entrypoint.sh, with a stop signal
# delivered to the Python driver.
#
# spark-operator starts the driver container as `driver --properties-file … <main file> …`,
# and the base entrypoint runs `tini -s -- spark-submit …`. tini forwards SIGTERM (pod
# deletion, node drain) to the spark-submit JVM only: the JVM exits at once (143) and the
# Python driver, its child, never hears of it, so the job's clean stop between batches never
# runs. In driver mode this script stays PID 1, runs the base entrypoint as its child and
# sends SIGTERM/SIGINT to the Python driver instead: the job stops its query between batches,
# stops Spark and exits 0, and spark-submit's JVM exits with it. Other modes (executor,
# anything else) are the base entrypoint unchanged.
set -uo pipefail
MAIN_FILE=/opt/streampipeline/processor_main.py

if [ "${1:-}" != driver ]; then
  exec /opt/entrypoint.sh "$@"
fi

/opt/entrypoint.sh "$@" &
child=$!

forward() {
  local pids
  # The Python driver: `<python> /opt/streampipeline/processor_main.py …`, a child of the JVM
  # (whose own command line also names the main file, but does not start with a python).
  pids=$(pgrep -f -- "^[^ ]*python[^ ]* ${MAIN_FILE}( |\$)" || true)
  if [ -n "$pids" ]; then
    echo "entrypoint: SIG$1 -> python driver ($pids)" >&2
    # shellcheck disable=SC2086
    kill -s "$1" $pids
  else  # not started yet, or already gone: stop spark-submit
    kill -s "$1" "$child" 2>/dev/null || true
  fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT

while :; do
  wait "$child"
  status=$?
  # `wait` also returns (128+n) when a trapped signal arrives; go on while the child lives.
  if ! kill -0 "$child" 2>/dev/null; then
    wait "$child" 2>/dev/null
    last=$?
    [ "$last" -ne 127 ] && status=$last
    exit "$status"
  fi
done
