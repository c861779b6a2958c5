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

# Open vSwitch: userspace datapath, no kernel module needed.  Both daemons must answer: `ovs-vsctl show`
# needs only the database server, and without ovs-vswitchd Mininet's first add-br waits for ever.
ovs_up() { ovs-vsctl --timeout=3 show >/dev/null 2>&1 && ovs-appctl -T 3 -t ovs-vswitchd version >/dev/null 2>&1; }
# ovs-vswitchd sends every port's packets through one AF_PACKET socket with the kernel's default send
# buffer; the lab's shaped queues need more, or it drops packets under load (mininet_topos/lab.py,
# ensure_send_buffer; the lab also restarts an ovs-vswitchd that was started before this was raised)
SEND_BUFFER=8388608
if [ "$(cat /proc/sys/net/core/wmem_default)" -lt "$SEND_BUFFER" ]; then
    sysctl -q -w net.core.wmem_default="$SEND_BUFFER"
    echo "net.core.wmem_default = $SEND_BUFFER" > /etc/sysctl.d/60-sidestep-lab.conf
fi
if ! ovs_up; then
    /usr/share/openvswitch/scripts/ovs-ctl start > /tmp/sidestep-ovs-start.log 2>&1 || true
    if ! ovs_up; then
        echo "setup.sh: Open vSwitch did not start (ovsdb-server and ovs-vswitchd must both run);" \
             "see /tmp/sidestep-ovs-start.log and /var/log/openvswitch/" >&2
        exit 1
    fi
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
        # optional: a failed build (a registry hiccup) leaves no half venv and does not stop the setup
        if ! { "$PY39" -m venv .venv-ryu &&
               .venv-ryu/bin/python -m pip install -q --disable-pip-version-check 'setuptools<58' wheel &&
               .venv-ryu/bin/python -m pip install -q --disable-pip-version-check 'eventlet==0.30.2' 'ryu==4.34' \
                   'networkx>=2.6' 'numpy<2' 'scikit-learn<1.7' 'joblib' 'pyyaml' 'dnspython<2.3'; }; then
            rm -rf .venv-ryu
            echo "setup.sh: building .venv-ryu (Ryu 4.34 on $PY39) failed; the Ryu smoke test will be skipped" >&2
        fi
    fi
    # the shipped forecaster is a scikit-learn 1.9.1 pickle, which the Ryu venv's scikit-learn (the last
    # for Python 3.9) cannot load: build the same default model there (~40 s), for `model:` under ryu-manager;
    # again whenever the shipped one is newer (a pull that changed the model or its features)
    if [ -x .venv-ryu/bin/ryu-manager ] && { [ ! -f .venv-ryu/default_model.joblib ] ||
            [ models/default_model.joblib -nt .venv-ryu/default_model.joblib ]; }; then
        if ! .venv-ryu/bin/python -m models.build_default -o .venv-ryu/default_model.joblib >/dev/null; then
            rm -f .venv-ryu/default_model.joblib .venv-ryu/default_model.joblib.json
            echo "setup.sh: building the forecaster for .venv-ryu failed; under ryu-manager predictive" \
                 "falls back to persistence" >&2
        fi
    fi
else
    echo "setup.sh: no Python 3.9 found; the Ryu 4.34 smoke test will be skipped (OS-Ken covers the app)"
fi
# what the lab and its tests run: check it is all here, so a broken step fails now and not as skipped tests
for tool in mn ovs-vsctl ovs-ofctl ovs-appctl iperf3 ethtool ping ss pgrep killall; do
    command -v "$tool" >/dev/null || { echo "setup.sh: $tool is missing after the install" >&2; exit 1; }
done
if ! .venv/bin/python -c 'import mininet.net, os_ken, sklearn, networkx, numba, yaml, matplotlib, pytest' 2>/dev/null; then
    echo "setup.sh: .venv cannot import what Sidestep needs; remove it (rm -rf .venv) and run this again" >&2
    exit 1
fi
echo "setup.sh: ready"
