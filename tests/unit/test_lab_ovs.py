"""The lab's check of Open vSwitch's packet-socket send buffers (``ss`` output as plain text)."""
from mininet_topos.lab import OVS_SEND_BUFFER_BYTES, small_ovs_send_buffers

SS = """Netid Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
p_raw 0      0                [0]:*                *     users:(("ovs-vswitchd",pid=1157,fd=47)) skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d0)
p_raw 0      0               [3]:e0_0-eth1       *     users:(("ovs-vswitchd",pid=1157,fd=52)) skmem:(r0,rb212992,t2304,tb8388608,f0,w0,o0,bl0,d0)
p_raw 0      0                [0]:*                *     users:(("dhclient",pid=77,fd=5)) skmem:(r0,rb212992,t0,tb4096,f0,w0,o0,bl0,d0)
"""


def test_only_ovs_vswitchd_sockets_below_the_size_count():
    assert small_ovs_send_buffers(SS, need_bytes=8388608) == [212992]     # not dhclient's, not the 8 MiB one
    assert small_ovs_send_buffers(SS, need_bytes=212992) == []
    assert small_ovs_send_buffers("", need_bytes=OVS_SEND_BUFFER_BYTES) == []
