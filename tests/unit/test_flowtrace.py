"""Flow-trace reader: every kind of bad input names file, line and column."""
import io

import pytest
from hypothesis import given, settings, strategies as st

from controller.flowtrace import TraceFlow, read_flow_trace, write_flow_trace
from controller.tracefile import TraceError

HOSTS = ["h%d" % i for i in range(1, 17)]


def _write(tmp_path, text, name="flows.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_minimal_trace_and_defaults(tmp_path):
    path = _write(tmp_path, "start_s,src,dst,size_bytes\n0,h1,h2,1000\n0.5,h3,h4,2e6\n")
    flows = read_flow_trace(path, HOSTS)
    assert [f.flow_id for f in flows] == ["L2", "L3"]
    assert flows[1].size_bytes == 2e6 and flows[1].cls == "background"
    assert flows[0].src_port is None and flows[0].proto == 6 and flows[0].deps == ()


def test_full_columns(tmp_path):
    path = _write(tmp_path, "start_s,src,dst,size_bytes,rate_bps,flow_id,job,iter,src_port,dst_port,deps,gap_s\n"
                            "0,h1,h2,1000,5e6,a,j,0,29500,29600,,\n"
                            "0,h2,h1,1000,,b,j,1,29501,29601,a,0.25\n")
    a, b = read_flow_trace(path, HOSTS)
    assert a.rate_bps == 5e6 and a.cls == "training" and a.iter == 0
    assert b.deps == ("a",) and b.gap_s == 0.25 and b.rate_bps is None


def test_round_trip_through_writer(tmp_path):
    flows = [TraceFlow("x", 0.125, "h1", "h5", 1500.0, rate_bps=1e6, cls="training", job="j", iter=0,
                       src_port=1, dst_port=2),
             TraceFlow("y", 0.0, "h5", "h1", 10.0, deps=("x",), gap_s=0.1, job="j", iter=1, cls="training")]
    buf = io.StringIO()
    write_flow_trace(buf, flows)
    path = _write(tmp_path, buf.getvalue())
    back = read_flow_trace(path, HOSTS)
    assert [(f.flow_id, f.start_s, f.size_bytes, f.deps, f.gap_s, f.rate_bps) for f in back] == \
        [(f.flow_id, f.start_s, f.size_bytes, f.deps, f.gap_s, f.rate_bps) for f in flows]


@pytest.mark.parametrize("body,line,column,words", [
    ("0,h1,h99,10,a,\n", 2, "dst", "unknown host"),
    ("0,h1,h2,-5,a,\n", 2, "size_bytes", "> 0"),
    ("0,h1,h2,0,a,\n", 2, "size_bytes", "> 0"),
    ("zero,h1,h2,10,a,\n", 2, "start_s", "not a number"),
    ("0,h1,h2,10,a,\n0,h2,h3,10,a,\n", 3, "flow_id", "already used on line 2"),
    ("0,h1,h2,10,a,\n0,h2,h3,10,b,zz\n", 3, "deps", "names no flow_id"),
    ("0,h1,h2,10,a,b\n0,h2,h3,10,b,c\n0,h3,h4,10,c,a\n", None, "deps", "cycle"),
    ("0,h1,h2,10,a,a\n", 2, "deps", "itself"),
    ("0,h1,h1,10,a,\n", 2, "dst", "two hosts"),
    ("0,h1,h2,10,a,;\n", 2, "deps", "empty flow_id"),
    ("0,h1,h2\n", 2, "size_bytes", "fields"),
    ("0,h1,h2,5,a,,9\n", 2, "(extra field 7)", "fields"),
])
def test_reader_errors(tmp_path, body, line, column, words):
    path = _write(tmp_path, "start_s,src,dst,size_bytes,flow_id,deps\n" + body)
    with pytest.raises(TraceError) as err:
        read_flow_trace(path, HOSTS)
    e = err.value
    assert e.path == path and words in str(e)
    if line is not None:
        assert e.line == line
    else:
        assert e.line in (2, 3, 4)
    assert e.column == column
    assert path in str(e)


def test_blank_rows_are_skipped_and_later_lines_keep_their_numbers(tmp_path):
    path = _write(tmp_path, "start_s,src,dst,size_bytes,flow_id,deps\n0,h1,h2,10,a,\n\n , ,\t,,,\n"
                            "0,h2,h3,10,b,a\n0,h3,h4,x,c,\n")
    with pytest.raises(TraceError) as err:
        read_flow_trace(path, HOSTS)
    assert err.value.line == 6 and err.value.column == "size_bytes"
    path = _write(tmp_path, "start_s,src,dst,size_bytes,flow_id,deps\n0,h1,h2,10,a,\n\n , ,\t,,,\n0,h2,h3,10,b,a\n")
    assert [f.flow_id for f in read_flow_trace(path, HOSTS)] == ["a", "b"]
    path = _write(tmp_path, "start_s,src,dst,size_bytes,flow_id,deps\n0,h1,h2,10,a,\n , x,,,,\n")
    with pytest.raises(TraceError) as err:       # a row with one non-blank cell is a row
        read_flow_trace(path, HOSTS)
    assert err.value.line == 3


def test_a_cycle_behind_flows_without_deps_is_found_with_its_members(tmp_path):
    path = _write(tmp_path, "start_s,src,dst,size_bytes,flow_id,deps\n0,h1,h2,10,x,\n0,h1,h2,10,y,x\n"
                            "0,h1,h2,10,a,b;y\n0,h2,h3,10,b,c\n0,h3,h4,10,c,a\n")
    with pytest.raises(TraceError) as err:
        read_flow_trace(path, HOSTS)
    assert "a -> b -> c -> a" in str(err.value) and err.value.line == 6 and err.value.column == "deps"


@pytest.mark.parametrize("col,value,words", [
    ("rate_bps", "0", "> 0"), ("iter", "-1", "minimum"), ("src_port", "70000", "port"),
    ("proto", "300", "protocol"), ("gap_s", "-1", "minimum"), ("cls", "bulk", "flow class"),
])
def test_optional_column_errors(tmp_path, col, value, words):
    extra = ",job" if col == "iter" else ""
    path = _write(tmp_path, "start_s,src,dst,size_bytes,%s%s\n0,h1,h2,10,%s%s\n"
                  % (col, extra, value, ",j" if extra else ""))
    with pytest.raises(TraceError) as err:
        read_flow_trace(path, HOSTS)
    assert err.value.column == col and err.value.line == 2 and words in str(err.value)


def test_header_problems(tmp_path):
    with pytest.raises(TraceError, match="size_bytes"):
        read_flow_trace(_write(tmp_path, "start_s,src,dst\n0,h1,h2\n"), HOSTS)
    with pytest.raises(TraceError, match="unknown column"):
        read_flow_trace(_write(tmp_path, "start_s,src,dst,size_bytes,colour\n0,h1,h2,1,red\n"), HOSTS)
    with pytest.raises(TraceError, match="no flows"):
        read_flow_trace(_write(tmp_path, "start_s,src,dst,size_bytes\n"), HOSTS)
    with pytest.raises(TraceError, match="iter given without a job"):
        read_flow_trace(_write(tmp_path, "start_s,src,dst,size_bytes,iter\n0,h1,h2,1,3\n"), HOSTS)


# ---------------------------------------------------------------- the quick parser
_POOL = {
    "start_s": ["0", "1.5", "-1", "-0", "nan", "inf", "1e400", "", "x", "1e3", "1_0"],
    "src": ["h1", "h2", "h9", "hx", ""],
    "dst": ["h1", "h2", "h3", ""],
    "size_bytes": ["1", "0", "-5", "1e6", "inf", "", "abc", "2.5"],
    "rate_bps": ["", "0", "-1", "1e9", "nan", "5"],
    "flow_id": ["", "a", "b", "a", "c"],
    "cls": ["", "training", "background", "bogus"],
    "job": ["", "j"],
    "iter": ["", "0", "-1", "3", "x", "1.5"],
    "proto": ["", "6", "17", "255", "256", "-1", "x"],
    "src_port": ["", "0", "65535", "65536", "-3", "80", "x"],
    "dst_port": ["", "5001", "70000", "y"],
    "deps": ["", "a", "a;b", "a;;b", ";", "a ; b", "b;"],
    "gap_s": ["", "0", "-0", "0.5", "-1", "nan", "x"],
}


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_quick_parser_gives_parse_rows_flow_or_defers_to_it(data):
    """Row by row: the same TraceFlow (values and types) as ``_parse_row``, or None and then its error."""
    from controller.flowtrace import OPTIONAL, REQUIRED, _parse_row, _quick_parser
    header = list(REQUIRED) + data.draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    header = data.draw(st.permutations(header))
    hosts = {"h1", "h2", "h3", "h9"}
    seen_quick, seen_ref = {}, {}
    quick = _quick_parser(header, hosts, seen_quick)
    for line in range(2, 2 + data.draw(st.integers(1, 8))):
        cells = [data.draw(st.sampled_from(_POOL[h])) for h in header]
        row = dict(zip(header, cells))
        try:
            want = _parse_row("t.csv", line, row, hosts, seen_ref)
        except TraceError as exc:
            want = str(exc)
        got = quick(line, list(cells))
        if got is None:
            try:
                got = _parse_row("t.csv", line, row, hosts, seen_quick)
            except TraceError as exc:
                got = str(exc)
        if isinstance(want, str):
            assert got == want
        else:
            fields = [(type(getattr(want, f)), getattr(want, f)) for f in want.__dataclass_fields__]
            assert [(type(getattr(got, f)), getattr(got, f)) for f in want.__dataclass_fields__] == fields
            assert got == want and hash(got) == hash(want)
        assert seen_quick == seen_ref


def test_a_trace_reads_the_same_without_the_quick_parser(tmp_path, monkeypatch):
    from controller import flowtrace
    from controller.scenarios import generate
    path = str(tmp_path / "t.csv")
    with open(path, "w") as fh:
        write_flow_trace(fh, generate("bursts", 4, 1000.0, 1))
    hosts = ["h%d" % i for i in range(1, 17)]
    fast = read_flow_trace(path, hosts)
    monkeypatch.setattr(flowtrace, "_quick_parser", lambda header, hosts, seen: lambda line, cells: None)
    assert read_flow_trace(path, hosts) == fast and len(fast) > 100


def test_a_csv_saved_by_excel_with_a_byte_order_mark_reads(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM; the header then "lacked" start_s, its first column."""
    p = tmp_path / "excel.csv"
    p.write_bytes(b"\xef\xbb\xbfstart_s,src,dst,size_bytes\r\n0,h1,h2,1000\r\n")
    (flow,) = read_flow_trace(str(p), HOSTS)
    assert (flow.start_s, flow.src, flow.dst, flow.size_bytes) == (0.0, "h1", "h2", 1000.0)
    from controller.loadtrace import read_link_loads
    q = tmp_path / "loads.csv"
    q.write_bytes(b"\xef\xbb\xbft_s,link,util\r\n0,e0_0->a0_0,0.5\r\n1,e0_0->a0_0,0.25\r\n")
    assert read_link_loads(str(q)).latest() == {("e0_0", "a0_0"): 0.25}


def test_a_row_without_flow_id_whose_line_name_is_taken_says_so(tmp_path):
    path = _write(tmp_path, "flow_id,start_s,src,dst,size_bytes\nL3,0,h1,h2,1000\n,0,h3,h4,1000\n")
    with pytest.raises(TraceError, match=r"flows\.csv:3: column 'flow_id': this row has no flow_id, so it is "
                                         r"named 'L3' after its line, and line 2 already uses that name"):
        read_flow_trace(path, HOSTS)


def test_protocol_by_name_as_in_plan(tmp_path):
    path = _write(tmp_path, "start_s,src,dst,size_bytes,proto\n0,h1,h2,10,udp\n0,h2,h3,10,TCP\n0,h3,h4,10,17\n")
    assert [f.proto for f in read_flow_trace(path, HOSTS)] == [17, 6, 17]


@pytest.mark.parametrize("column, value, words", [
    ("src_port", "70000", "'70000' is not a port number (0..65535)"),
    ("proto", "256", "'256' is not an IP protocol (a number 0..255, or tcp, udp or icmp)"),
    ("cls", "bulk", "'bulk' is not a flow class; use training or background"),
    ("dst", "h99", "unknown host 'h99'; hosts of this topology are named h1..h16"),
])
def test_trace_and_plan_refuse_a_field_in_the_same_words(tmp_path, capsys, column, value, words):
    """A flow trace (replay) and a flow list (``sidestep plan``) share their 5-tuple, class and hosts."""
    from controller import cli
    trace = {"src_port": "", "proto": "", "cls": "training", "dst": "h2"}
    trace[column] = value
    path = _write(tmp_path, "start_s,src,dst,size_bytes,cls,proto,src_port\n0,h1,%s,10,%s,%s,%s\n"
                  % (trace["dst"], trace["cls"], trace["proto"], trace["src_port"]))
    with pytest.raises(TraceError) as err:
        read_flow_trace(path, HOSTS)
    assert str(err.value) == "%s:2: column %r: %s" % (path, column, words)
    flows = _write(tmp_path, "flow_id,src,dst,rate_bps,cls,proto,src_port\nf,h1,%s,1e6,%s,%s,%s\n"
                   % (trace["dst"], trace["cls"], trace["proto"], trace["src_port"]), name="active.csv")
    loads = _write(tmp_path, "t_s,link,util\n0,e0_0->a0_0,0.1\n", name="loads.csv")
    assert cli.main(["plan", "--k", "4", "--flows", flows, "--loads", loads, "--policy", "reactive"]) == 2
    assert capsys.readouterr().err.strip() == "sidestep plan: error: %s:2: column %r: %s" % (flows, column, words)
