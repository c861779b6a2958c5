"""Bad topology input through ``mn --custom``: fails at once, naming the constraint.

Its own module on purpose: when ``mn`` fails it runs Mininet's cleanup, which
kills every Mininet host on the machine, so no lab may be up while it runs.
"""
import os
import subprocess

import pytest

from mininet_topos.lab import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("k", ["3", "0"])
def test_bad_k_fails_at_once_naming_the_constraint(k):
    proc = subprocess.run(["mn", "--custom", os.path.join(ROOT, "mininet_topos", "fattree.py"),
                           "--topo", "fattree,k=%s" % k, "--switch", "ovs,datapath=user", "--test", "none",
                           "--controller", "none"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    # `mn` itself exits 0 after an exception in a custom topology (it prints it, cleans up and returns),
    # so the refusal shows only in its output: the message, and no network was started
    assert "k must be an even integer >= 2" in proc.stdout
    assert "*** Starting" not in proc.stdout, proc.stdout[-1000:]


