"""A fat-tree cable named on the command line (``A-B``), for ``replay --fail`` and ``plan --down``."""
from __future__ import annotations

from controller.fabric import Fabric, Link


def parse_cable(label: str, text: str, fabric: Fabric) -> Link:
    """``text`` as a cable of ``fabric``; ValueError starting with ``label`` says what to write instead.

    Only that it is written right and exists: whether it may fail (two switches,
    not down already) is ``controller.sim.check_link_events``' to say.
    """
    a, dash, b = text.partition("-")
    if not (dash and a and b):
        raise ValueError("%s: write the cable as A-B, e.g. a0_0-c0" % label)
    if not fabric.graph.has_edge(a, b):
        raise ValueError("%s: there is no cable %s-%s in this fat-tree; cables join e<pod>_<i> to "
                         "a<pod>_<j> (same pod) and a<pod>_<j> to its core switches c<n>" % (label, a, b))
    return a, b
