#!/usr/bin/env bash
# Installs everything Sidestep needs on Debian 12 (as root) and starts Open vSwitch.
#   apt: Mininet, Open vSwitch, iperf3, ethtool, ping
#   .venv      Debian's python3 + system site-packages (so `import mininet` works), OS-Ken, the project
#   .venv-ryu  Python 3.9 + Ryu 4.34, only if a Python 3.9 is present (pyenv); used by the Ryu smoke test
# Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: must run as root (apt-get, Open vSwitch, Mininet)" >&2
    exit 2
fi

APT_PKGS="mininet openvswitch-switch iperf3 ethtool iputils-ping iproute2 procps psmisc python3-venv python3-pip python3-yaml"
missing=""
for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
fi

# Open vSwitch: userspace datapath, no kernel module needed.
if ! ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
    /usr/share/openvswitch/scripts/ovs-ctl start >/dev/null 2>&1 || true
    ovs-vsctl --timeout=10 show >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[osken,plot,test,fast]'

# Ryu 4.34 runs only on Python <= 3.9: build its venv if such a Python exists here.
PY39=""
for cand in /root/.pyenv/versions/3.9*/bin/python3.9 /usr/local/bin/python3.9 /usr/bin/python3.9 python3.9; do
    # run it: a pyenv shim exists on PATH even when no 3.9 is selected, and then fails
    if "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 9)' >/dev/null 2>&1; then
        PY39="$cand"; break
    fi
done
if [ -n "$PY39" ]; then
    if [ ! -x .venv-ryu/bin/ryu-manager ]; then
        "$PY39" -m venv .venv-ryu
        .venv-ryu/bin/python -m pip install -q --disable-pip-version-check 'setuptools<58' wheel
        .venv-ryu/bin/python -m pip install -q --disable-pip-version-check 'eventlet==0.30.2' 'ryu==4.34' \
            'networkx>=2.6' 'numpy<2' 'scikit-learn<1.7' 'joblib' 'pyyaml' 'dnspython<2.3'
    fi
else
    echo "setup.sh: no Python 3.9 found; the Ryu 4.34 smoke test will be skipped (OS-Ken covers the app)"
fi
echo "setup.sh: ready"
