#!/usr/bin/env bash
# Installs Debian packages for a CI step where apt-get is there and we are root, quietly, updating
# the package lists once if the first try fails. Never fails itself: the calling step checks for
# the commands it needs and says that it skipped if they are still missing.
# Usage: bash .ci/apt-install.sh PACKAGE...
if command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q "$@" > /dev/null 2>&1 || { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q "$@" > /dev/null 2>&1; }
fi
exit 0
