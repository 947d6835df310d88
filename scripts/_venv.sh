# Sourced by scripts/quickstart and scripts/test: make .venv (if missing) and install medaug into it.
# MEDAUG_VENV overrides the venv location; EXTRAS selects optional dependency groups.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MEDAUG_VENV:-$repo/.venv}"
py="${PYTHON:-python3}"
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
