"""The lab's link shaping: TCLink's rate limit with a bounded queue.

Why: TCLink shapes a link with an htb class whose queue is the interface's
default, 1,000 packets (veth's txqueuelen).  At 10 Mbit/s that is 1.2 s of
queue, which a single TCP flow fills, so every packet that shares the link
waits up to a second behind it.  Data-center switches have shallow buffers,
and this queue made the lab's results depend on where the ring's ACKs went:
a planner move that put one ring connection's data on the link that carried
another's ACKs slowed the job by 25-45 % in ``sidestep lab --quick`` runs,
while the same placement with a bounded queue ran as fast as the other
planner's.  TCLink's own ``max_queue_size`` needs netem, which this kernel
lacks, so the limit is a plain ``pfifo`` under the htb class.
"""
import math
from typing import Any, Dict, Optional

QUEUE_MS = 100.0        # the queue's length in time at the link's rate
MIN_QUEUE_PACKETS = 10  # at very low rates, still room for a few packets of a burst
MTU_BYTES = 1500


def queue_packets(bw_mbps: float, queue_ms: float = QUEUE_MS) -> int:
    """Packets of MTU size that the link sends in ``queue_ms`` at ``bw_mbps`` (at least MIN_QUEUE_PACKETS)."""
    if not bw_mbps > 0 or not math.isfinite(bw_mbps):
        raise ValueError("link rate must be a positive number of Mbit/s, got %r" % (bw_mbps,))
    return max(MIN_QUEUE_PACKETS, int(math.ceil(bw_mbps * 1e6 * queue_ms / 1e3 / (MTU_BYTES * 8))))


try:
    from mininet.link import Link, TCIntf
except ImportError:  # pragma: no cover - queue_packets works without Mininet
    Link = TCIntf = None


if TCIntf is not None:
    class BoundedTCIntf(TCIntf):
        """TCIntf whose rate-limited queue holds ``queue_packets(bw)`` packets, not 1,000."""

        def config(self, bw: Optional[float] = None,  # pylint: disable=arguments-differ
                   **params: Any) -> Optional[Dict[str, Any]]:
            result = TCIntf.config(self, bw=bw, **params)
            if bw is not None and result is not None and result.get("parent", "").strip() == "parent 5:1":
                out = self.tc("%%s qdisc add dev %%s parent 5:1 handle 10: pfifo limit %d" % queue_packets(bw))
                if out.strip():
                    raise RuntimeError("could not bound the queue of %s: %s" % (self.name, out.strip()))
            return result

    class BoundedTCLink(Link):
        """TCLink with ``BoundedTCIntf`` at both ends."""

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("cls1", BoundedTCIntf)
            kwargs.setdefault("cls2", BoundedTCIntf)
            Link.__init__(self, *args, **kwargs)
else:  # pragma: no cover
    BoundedTCIntf = BoundedTCLink = None
