#!/bin/sh
# The image's install steps, run by docker/Dockerfile and, without Docker, by tests/docker.
#
#   install.sh wheels SRC DIR   build the shulian wheel and a wheel of every dependency into DIR
#                               (the build stage: it may need the network and a compiler)
#   install.sh install DIR      install shulian from the wheels in DIR only: no index, no source
#                               builds, so the runtime stage needs no compiler; then check that the
#                               console script runs
#
# PYTHON names the interpreter (default: python3); the install goes into its environment.
set -eu

PYTHON=${PYTHON:-python3}

usage() {
    echo "usage: install.sh wheels SRC DIR | install.sh install DIR" >&2
    exit 2
}

[ $# -ge 1 ] || usage
case "$1" in
wheels)
    [ $# -eq 3 ] || usage
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$3" "$2"
    ls "$3"/shulian-*.whl >/dev/null
    ;;
install)
    [ $# -eq 2 ] || usage
    "$PYTHON" -m pip install --no-cache-dir --quiet --no-index --only-binary :all: --find-links "$2" shulian
    bin=$(dirname "$(command -v "$PYTHON")")
    "$bin/shulian" --help >/dev/null
    ;;
*)
    usage
    ;;
esac
