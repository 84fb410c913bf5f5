"""Fine layers' box inside the fine sky cell (issue 13)."""

from mvmdb.process import embed


def test_fine_layers_stay_in_the_cell_and_take_its_first_row_and_column():
    aligned = embed.align((0, 21953, 500, 21953))  # footprints touching both edges of the fine cell
    assert aligned == (1, 21954, 499, 21954)  # coarse-aligned: fine 0 lies in no coarse pixel
    assert embed.at_scale(aligned, "fine") == (0, 21953, 499, 21953)  # never outside 0 .. NAXIS - 1
    assert embed.at_scale(aligned, "coarse") == (0, 7317, 166, 7317)


def test_inner_boxes_are_unchanged():
    aligned = embed.align((3000, 5000, 6000, 9000))
    assert embed.at_scale(aligned, "fine") == aligned
