"""The lab's bounded link queue: its length in packets from the link rate."""
import math

import pytest

from mininet_topos.shaping import MIN_QUEUE_PACKETS, QUEUE_MS, queue_packets


def test_the_queue_holds_its_time_at_the_link_rate():
    # 10 Mbit/s for 100 ms = 1,000,000 bits = 83.3 packets of 1,500 bytes
    assert queue_packets(10) == 84
    assert queue_packets(100) == 834
    for mbps in (3.0, 10.0, 47.5, 1000.0):
        n = queue_packets(mbps)
        assert (n - 1) * 1500 * 8 < mbps * 1e6 * QUEUE_MS / 1e3 <= n * 1500 * 8


def test_slow_links_keep_a_few_packets():
    assert queue_packets(0.1) == MIN_QUEUE_PACKETS


@pytest.mark.parametrize("bad", [0, -5, math.inf, math.nan])
def test_a_rate_that_is_not_positive_and_finite_is_refused(bad):
    with pytest.raises(ValueError, match="positive number of Mbit/s"):
        queue_packets(bad)
