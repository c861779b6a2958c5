"""One import point for OS-Ken (maintained fork, Python 3.10+) or Ryu 4.34 (Python <= 3.9).

Only this module and ``controller/app.py`` name either framework, so one app
file loads under ``osken-manager``, ``ryu-manager`` and ``sidestep controller``.
"""
try:  # OS-Ken first: it is the maintained one
    from os_ken import cfg
    from os_ken.base import app_manager
    from os_ken.controller import ofp_event
    from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                           set_ev_cls)
    from os_ken.lib import hub
    from os_ken.lib.packet import arp, ethernet, ipv4, lldp, packet, tcp, udp
    from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser
    FRAMEWORK = "os_ken"
    BaseApp = app_manager.OSKenApp
except ImportError:  # pragma: no cover - exercised by the Ryu smoke test under Python 3.9
    from ryu import cfg  # type: ignore[no-redef]
    from ryu.base import app_manager  # type: ignore[no-redef]
    from ryu.controller import ofp_event  # type: ignore[no-redef]
    from ryu.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER,  # type: ignore[no-redef]
                                        MAIN_DISPATCHER, set_ev_cls)
    from ryu.lib import hub  # type: ignore[no-redef]
    from ryu.lib.packet import arp, ethernet, ipv4, lldp, packet, tcp, udp  # type: ignore[no-redef]
    from ryu.ofproto import ofproto_v1_3, ofproto_v1_3_parser  # type: ignore[no-redef]
    FRAMEWORK = "ryu"
    BaseApp = app_manager.RyuApp

__all__ = ["cfg", "app_manager", "ofp_event", "CONFIG_DISPATCHER", "DEAD_DISPATCHER",
           "MAIN_DISPATCHER", "set_ev_cls", "hub", "arp", "ethernet", "ipv4", "lldp", "packet",
           "tcp", "udp", "ofproto_v1_3", "ofproto_v1_3_parser", "FRAMEWORK", "BaseApp"]
