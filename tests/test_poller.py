"""Poller files: the archive's format, written atomically, read strictly (spec §3.1, §4.1)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mvmdb.poller import PollerError, PollerRow, format_exptime, format_row, parse_line, read_poller, write_poller

ARCHIVE_DOC_LINE = (
    "hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits,12286,BL7,0R,486.0,F775W,WFC,skycell-p1889x07y19,NEW,"
    "/data/hst/12286/jbl70rtvq/hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits"
)
ARCHIVE_ISSUE_LINE = (
    "hst_12311_07_wfc3_uvis_f814w_ibj207r5_flc.fits,12311,BJ2,07,50.0,F814W,UVIS,skycell-p0778x18y20,OLD,"
    "/ifs/archive/ops/hst/public/ibj2/ibj207r5q/hst_12311_07_wfc3_uvis_f814w_ibj207r5_flc.fits"
)

ROW = PollerRow(
    filename="hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits",
    proposal_id=12286,
    program_id="BL7",
    obset_id="0R",
    exptime=486.0,
    filters="F775W",
    detector="WFC",
    skycell="skycell-p1889x07y19",
    status="NEW",
    path="/data/hst/12286/jbl70rtvq/hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits",
)
"""The row of :data:`ARCHIVE_DOC_LINE`."""
ISSUE_ROW = PollerRow(
    filename="hst_12311_07_wfc3_uvis_f814w_ibj207r5_flc.fits",
    proposal_id=12311,
    program_id="BJ2",
    obset_id="07",
    exptime=50.0,
    filters="F814W",
    detector="UVIS",
    skycell="skycell-p0778x18y20",
    status="OLD",
    path="/ifs/archive/ops/hst/public/ibj2/ibj207r5q/hst_12311_07_wfc3_uvis_f814w_ibj207r5_flc.fits",
)
"""The row of :data:`ARCHIVE_ISSUE_LINE`."""


@pytest.mark.parametrize(("value", "text"), [(486.0, "486.0"), (50.0, "50.0"), (699.232483, "699.232483"), (50, "50.0")])
def test_exptime_is_python_str_of_float(value, text):
    assert format_exptime(value) == text


@pytest.mark.parametrize(
    ("line", "row", "is_new"),
    [pytest.param(ARCHIVE_DOC_LINE, ROW, True, id="docs-example"), pytest.param(ARCHIVE_ISSUE_LINE, ISSUE_ROW, False, id="issue")],
)
def test_archive_lines_parse_and_format(tmp_path, line, row, is_new):
    path = tmp_path / f"{row.skycell}_mvm_poller.txt"
    path.write_text(line)
    (got,) = read_poller(path)
    assert got == row
    assert got.is_new is is_new
    assert format_row(row) == line


def test_write_then_read_round_trips_without_trailing_newline(tmp_path):
    rows = [
        ROW,
        ROW._replace(
            filename="jbl70rtwq_flc.fits",
            exptime=699.232483,
            filters="F606W-POL60V",
            status="OLD",
            path="/data/hst/12286/jbl70rtwq/jbl70rtwq_flc.fits",
        ),
    ]
    path = write_poller(tmp_path / "sub" / "skycell-p1889x07y19_mvm_poller.txt", rows)
    data = path.read_bytes()
    assert not data.endswith(b"\n")
    assert data.decode().split("\n") == [format_row(r) for r in rows]
    assert data.decode().split("\n")[1].split(",")[4:6] == ["699.232483", "F606W-POL60V"]
    assert read_poller(path) == rows
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left behind


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "skycell-p1889x07y19_mvm_poller.txt"
    write_poller(path, [ROW])
    inode_before = os.stat(path).st_ino
    write_poller(path, [ROW._replace(status="OLD")])
    assert os.stat(path).st_ino != inode_before  # a new file renamed over the old one
    assert read_poller(path)[0].status == "OLD"


def test_write_refuses_bad_rows_and_leaves_nothing(tmp_path):
    path = tmp_path / "p.txt"
    with pytest.raises(PollerError) as err:
        write_poller(path, [ROW, ROW._replace(path="/a,b/x_flc.fits"), ROW._replace(skycell="skycell-p1970x15y02")])
    assert "line 2: path '/a,b/x_flc.fits' contains a comma" in str(err.value)
    assert "line 3: sky cell skycell-p1970x15y02 differs" in str(err.value)
    with pytest.raises(PollerError, match="no rows"):
        write_poller(path, [])
    assert list(tmp_path.iterdir()) == []


def test_status_is_case_insensitive_and_blanks_comments_are_skipped(tmp_path):
    path = tmp_path / "p.txt"
    lines = [ARCHIVE_DOC_LINE.replace(",NEW,", ",new,"), "", "# a comment", ARCHIVE_DOC_LINE.replace(",NEW,", ",Old,")]
    path.write_text("\n".join(lines) + "\n")
    assert [r.status for r in read_poller(path)] == ["NEW", "OLD"]


def test_windows_line_endings_and_a_byte_order_mark_are_read(tmp_path):
    """Pollers edited on Windows: CRLF line ends and a UTF-8 BOM before the first row."""
    path = tmp_path / "p.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([ARCHIVE_DOC_LINE, ARCHIVE_ISSUE_LINE]).encode() + b"\r\n")
    assert read_poller(path) == [ROW, ISSUE_ROW]
    path.write_bytes(b"\xef\xbb\xbf" + "\r".join([ARCHIVE_DOC_LINE, ARCHIVE_ISSUE_LINE]).encode())  # old Mac
    assert read_poller(path) == [ROW, ISSUE_ROW]


def _fields(**changes: str) -> str:
    names = ["filename", "proposal_id", "program_id", "obset_id", "exptime", "filters", "detector", "skycell", "status", "path"]
    values = dict(zip(names, ARCHIVE_DOC_LINE.split(",")))
    values.update(changes)
    return ",".join(values[n] for n in names)


BAD_LINES = {
    "nine columns": (ARCHIVE_DOC_LINE.rsplit(",", 1)[0], "expected 10 comma-separated columns, found 9"),
    "eleven columns": (ARCHIVE_DOC_LINE + ",extra", "expected 10 comma-separated columns, found 11"),
    "status": (_fields(status="1"), "status '1' is not NEW or OLD"),
    "status word": (_fields(status="NEWER"), "status 'NEWER' is not NEW or OLD"),
    "sky cell": (_fields(skycell="skycell-1889x07y19"), "does not match skycell-pPPPPxXXyYY"),
    "sky cell off grid": (_fields(skycell="skycell-p1889x22y19"), "outside the grid"),
    "exptime": (_fields(exptime="long"), "exptime 'long' is not a number"),
    "exptime nan": (_fields(exptime="nan"), "is not a finite, non-negative number"),
    "proposal": (_fields(proposal_id="12a86"), "proposal_id '12a86' is not an integer"),
    "empty path": (_fields(path=""), "path is empty"),
    "empty filename": (_fields(filename=""), "filename is empty"),
    "not an exposure": (_fields(filename="notes.txt"), "is not an exposure file name"),
    "program": (_fields(program_id="bl7"), "program_id 'bl7' is not 3 upper-case"),
    "empty detector": (_fields(detector=""), "detector '' is not a non-empty upper-case"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_each_bad_line_gives_one_clear_error(tmp_path, case):
    line, message = BAD_LINES[case]
    path = tmp_path / "p.txt"
    path.write_text("\n".join([ARCHIVE_DOC_LINE, line, ARCHIVE_DOC_LINE]))
    with pytest.raises(PollerError) as err:
        read_poller(path)
    text = str(err.value)
    assert text.startswith(f"poller file {path}, line 2: ")
    assert message in text
    assert "\n" not in text
    assert err.value.problems == [(2, err.value.problems[0][1])]


def test_all_bad_lines_are_reported_together(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("\n".join([_fields(status="X"), ARCHIVE_DOC_LINE, _fields(exptime="?"), ARCHIVE_ISSUE_LINE]))
    with pytest.raises(PollerError) as err:
        read_poller(path)
    assert [line for line, _ in err.value.problems] == [1, 3]
    assert str(err.value) == (
        f"poller file {path} has 2 bad lines: line 1: status 'X' is not NEW or OLD; line 3: exptime '?' is not a number"
    )


def test_rows_of_other_sky_cells_are_read_as_they_are(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("\n".join([ARCHIVE_DOC_LINE, ARCHIVE_ISSUE_LINE]))
    assert [r.skycell for r in read_poller(path)] == ["skycell-p1889x07y19", "skycell-p0778x18y20"]


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(PollerError, match="has no rows"):
        read_poller(empty)
    with pytest.raises(PollerError, match="cannot be read"):
        read_poller(Path(tmp_path / "missing.txt"))


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(
    lambda s: "," not in s and len(s.splitlines()) == 1 and not s.endswith(("\n", "\r"))
)


@given(
    stem=st.from_regex(r"[a-z0-9]{9}", fullmatch=True),
    suffix=st.sampled_from(["_flt.fits", "_flc.fits"]),
    proposal_id=st.integers(min_value=0, max_value=10**6),
    program_id=st.from_regex(r"[A-Z0-9]{3}", fullmatch=True),
    obset_id=st.from_regex(r"[A-Z0-9]{2}", fullmatch=True),
    exptime=st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False),
    filters=st.from_regex(r"F[0-9]{3}[WMNLP](-POL[0-9]{1,3}[UV]?)?", fullmatch=True),
    detector=st.sampled_from(["WFC", "HRC", "SBC", "UVIS", "IR", "PC"]),
    cell=st.tuples(st.integers(0, 2643), st.integers(1, 21), st.integers(1, 21)),
    status=st.sampled_from(["NEW", "OLD"]),
    path=_text.map(lambda s: "/" + s.strip()),
)
def test_format_and_parse_round_trip(stem, suffix, proposal_id, program_id, obset_id, exptime, filters, detector, cell, status, path):
    row = PollerRow(
        stem + suffix, proposal_id, program_id, obset_id, exptime, filters, detector,
        "skycell-p{:04d}x{:02d}y{:02d}".format(*cell), status, path,
    )  # fmt: skip
    assert parse_line(format_row(row)) == row
    with tempfile.TemporaryDirectory() as tmp:
        assert read_poller(write_poller(Path(tmp) / "p.txt", [row, row._replace(status="OLD")]))[0] == row


def test_line_breaks_of_any_kind_are_refused_in_fields(tmp_path):
    for sep in ["\x0b", "\x1c", "\u2028", "\r"]:
        with pytest.raises(PollerError, match="contains a comma or a line break"):
            write_poller(tmp_path / "p.txt", [ROW._replace(path=f"/data{sep}x_flc.fits")])
