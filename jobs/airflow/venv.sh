#!/usr/bin/env bash
# Build (once) the Airflow virtualenv the DAG tests run in, and print its directory.
#
# Airflow and the cncf-kubernetes provider never enter the project's .venv or an image:
# they go into their own virtualenv under $STREAMPIPELINE_CACHE, installed from
# requirements.lock with --require-hashes, keyed by the lock file's hash and the Python
# version, so a changed lock builds a new one and an unchanged lock costs nothing.
#   UV=.venv/bin/uv PYTHON=python3 bash jobs/airflow/venv.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lock="$here/requirements.lock"
uv="${UV:-uv}"
python="${PYTHON:-python3}"
cache="${STREAMPIPELINE_CACHE:-$HOME/.cache/streampipeline}"

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Airflow 3.3's Kubernetes provider needs Python >= 3.11; set PYTHON=python3.11 (or newer)" >&2
  exit 1
}
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( { cat "$lock"; echo "$pyver"; } | sha1sum | cut -c1-12)"
venv="$cache/airflow-venv/$key"
if [[ -f "$venv/.complete" ]]; then
  echo "$venv"
  exit 0
fi
mkdir -p "$cache/airflow-venv"
tmp="$(mktemp -d "$cache/airflow-venv/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s%N)
export UV_PYTHON_DOWNLOADS=never
# Built in a temporary directory and moved into place once complete (--relocatable:
# its scripts find their interpreter relative to themselves), so an interrupted build
# never leaves a half-installed venv that looks usable.
"$uv" venv -q --relocatable --python "$python" "$tmp" >&2
"$uv" pip install -q --python "$tmp/bin/python" --require-hashes --no-deps -r "$lock" >&2
ms=$(( ($(date +%s%N) - start) / 1000000 ))
seconds="$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
echo "$seconds" >"$tmp/.install-seconds"
rm -rf "$venv"
mv "$tmp" "$venv"
trap - EXIT
touch "$venv/.complete"
echo "airflow venv: installed $(grep -c '^[a-z0-9]' "$lock") packages in ${seconds}s -> $venv" >&2
echo "$venv"
