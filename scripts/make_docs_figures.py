#!/usr/bin/env python
"""Draw docs/images/tessellation.png: projection cells, sky cells and their overlaps.

Everything is computed by mvmdb.sky (no hand-placed shapes): PC 1889 (ring 29) with its
21 x 21 sky cells, PC 1970 of ring 30 which overlaps it, and the two sky cells that both
contain PG 1202+281 (RA 181.1754, Dec 27.9031).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mvmdb.sky.grid import ProjectionCell, SkyCell
from mvmdb.sky.overlap import cells_at

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "tessellation.png"


def outline(corners):
    c = np.asarray(corners)
    return np.r_[c[:, 0], c[0, 0]], np.r_[c[:, 1], c[0, 1]]


def main() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 6.2))
    ra0, dec0 = 181.1754, 27.9031
    for pc_id, colour in ((1889, "tab:blue"), (1970, "tab:orange")):
        pc = ProjectionCell.from_id(pc_id)
        for x in range(1, 22):
            for y in range(1, 22):
                ra, dec = outline(SkyCell(pc_id, x, y).corners("fine"))
                ax1.plot(ra, dec, color=colour, lw=0.3, alpha=0.6)
        ra, dec = outline(pc.corners[:4])
        ax1.plot(ra, dec, color=colour, lw=2, label=f"projection cell {pc_id} (ring {pc.ring}, Dec {pc.crval[1]:g})")
    ax1.plot([ra0], [dec0], "k*", ms=12, label="PG 1202+281")
    ax1.invert_xaxis()
    ax1.set_xlabel("RA (deg)")
    ax1.set_ylabel("Dec (deg)")
    ax1.set_title("Rings 4 deg apart; each projection cell is 21 x 21 sky cells")
    ax1.legend(loc="lower left", fontsize=8)

    hits = cells_at(np.array([ra0]), np.array([dec0]))
    for cell, colour in zip(hits.skycells(), ("tab:blue", "tab:orange")):
        ra, dec = outline(cell.corners("fine"))
        ax2.fill(ra, dec, color=colour, alpha=0.15)
        ax2.plot(ra, dec, color=colour, lw=2, label=f"{cell.name} (21954 px at 0.04\"/px)")
    # neighbours of p1889x07y19 show the 512-px overlap on the +x/+y side
    for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1)):
        ra, dec = outline(SkyCell(1889, 7 + dx, 19 + dy).corners("fine"))
        ax2.plot(ra, dec, color="tab:blue", lw=0.8, ls="--")
    ax2.plot([ra0], [dec0], "k*", ms=14)
    ax2.invert_xaxis()
    ax2.set_xlabel("RA (deg)")
    ax2.set_title("A position near a ring edge belongs to sky cells of both rings")
    ax2.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
