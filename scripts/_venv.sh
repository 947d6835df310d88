# Sourced by scripts/quickstart and scripts/test: make .venv (if missing) and install medaug into it.
# MEDAUG_VENV overrides the venv location; EXTRAS selects optional dependency groups;
# MEDAUG_PYTHON names an existing Python to use as it is instead (no venv, no installs).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MEDAUG_VENV:-$repo/.venv}"
py="${PYTHON:-python3}"
if [ -n "${MEDAUG_PYTHON:-}" ]; then
  # An environment that already has medaug's dependencies (an offline GPU node's, say): use it
  # as it is, install nothing, and run medaug from this checkout.
  "$MEDAUG_PYTHON" -c 'import sys, torch; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || { echo "MEDAUG_PYTHON=$MEDAUG_PYTHON: expected a Python >= 3.11 that can import torch" >&2; exit 2; }
  exe="$(command -v "$MEDAUG_PYTHON")"
  case "$exe" in /*) ;; *) exe="$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")" ;; esac
  shim="$(mktemp -d)"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$exe" >"$shim/python"
  chmod +x "$shim/python"
  export PATH="$shim:$PATH" PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
  echo "using $MEDAUG_PYTHON as it is (MEDAUG_PYTHON): nothing installed" >&2
  return 0
fi
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "medaug needs Python >= 3.11 ($py is older)" >&2; exit 2; }
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
if ! "$venv/bin/python" -c 'import torch, torchvision' 2>/dev/null; then
  echo "installing torch + torchvision (a few minutes the first time)" >&2
  if [ "$(uname -m)" = "x86_64" ]; then
    "${pip[@]}" install "torch==2.14.1" "torchvision==0.29.1"
  else
    "${pip[@]}" install torch torchvision
  fi
fi
echo "installing medaug${EXTRAS:+[$EXTRAS]}" >&2
"${pip[@]}" install -e "$repo${EXTRAS:+[$EXTRAS]}"
export PATH="$venv/bin:$PATH"
