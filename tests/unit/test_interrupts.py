"""interrupts_deferred: a Ctrl-C or SIGTERM inside the block is acted on after it, by the handler it would have met."""
import os
import signal
import threading

import pytest

from mininet_topos.interrupts import interrupts_deferred


def test_a_ctrl_c_inside_the_block_lets_it_finish_and_then_interrupts():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("rest of the block")
    assert finished == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_goes_to_the_handler_installed_before_with_its_number():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_without_a_signal_the_handlers_are_restored_and_nothing_is_raised():
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    with interrupts_deferred():
        value = 1 + 1
    assert value == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_outside_the_main_thread_the_block_just_runs():
    result = []

    def body():
        with interrupts_deferred():
            result.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=body)
    worker.start()
    worker.join(timeout=10)
    assert result == [signal.getsignal(signal.SIGINT)]
