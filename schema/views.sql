-- mvmdb coverage views and helper function at migration head (made by migrations 0002, 0005 and 0006;
-- tests/db/test_views.py checks that running this file after schema/ddl.sql gives the
-- same definitions as the migrations). Read-only: nothing here stores data.
--
-- Conventions: exposure times in seconds, areas in deg², dates are DATE-OBS (or the
-- day of EXPSTART, MJD, when DATE-OBS is missing). Exposures with an excluded_reason
-- are left out of sky coverage (exposure counts, times, areas) and counted apart as
-- n_excluded; a layer's figures are those of its members, whatever they are.

-- Area, deg², of n HEALPix pixels at order 29: one is 4π sr / (12 · 4^29) = 10800 / (π · 2^58) deg².
CREATE FUNCTION mvm_pixels_area_deg2(n_pixels numeric) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN n_pixels::double precision * (10800.0 / (pi() * 2.0 ^ 58));

COMMENT ON FUNCTION mvm_pixels_area_deg2(numeric) IS 'Area in deg2 of n order-29 HEALPix pixels';

-- Area, deg², of a set of order-29 NESTED ranges, e.g. mvm_area_deg2(range_agg(chip_hpx.hpx)).
CREATE FUNCTION mvm_area_deg2(ranges int8multirange) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN mvm_pixels_area_deg2(coalesce((SELECT sum(upper(r) - lower(r)) FROM unnest(ranges) AS r), 0));

COMMENT ON FUNCTION mvm_area_deg2(int8multirange) IS
    'Area in deg2 of order-29 HEALPix NESTED ranges (e.g. range_agg(chip_hpx.hpx))';

-- One row per archive layer (layer set 'all'; sky cell + instrument + detector + filter +
-- scale; migration 0006 left the time-domain layers out, see v_layer_set_coverage): its members
-- (all of them, as the planner and the product see them), their exposure times and
-- dates, and whether its product is missing (none), current, or stale (NEW members).
CREATE VIEW v_layer_coverage AS
SELECT
    l.id AS layer_id,
    l.name AS layer_name,
    sc.id AS sky_cell_id,
    sc.name AS sky_cell_name,
    sc.projection_cell_id,
    l.instrument,
    l.detector,
    l.filter,
    l.scale,
    count(e.id) AS n_exposures,
    count(e.id) FILTER (WHERE lm.status = 'NEW') AS n_new,
    coalesce(sum(e.exptime), 0) AS total_exptime_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY e.exptime) AS median_exptime_s,
    min(coalesce(e.date_obs, date '1858-11-17' + floor(e.expstart)::int)) AS first_date,
    max(coalesce(e.date_obs, date '1858-11-17' + floor(e.expstart)::int)) AS last_date,
    coalesce(
        array_agg(DISTINCT e.proposid ORDER BY e.proposid) FILTER (WHERE e.proposid IS NOT NULL),
        '{}'
    ) AS proposals,
    CASE
        WHEN p.id IS NULL THEN 'none'
        WHEN count(e.id) FILTER (WHERE lm.status = 'NEW') > 0 THEN 'stale'
        ELSE 'current'
    END AS product_status,
    p.path AS product_path
FROM layer AS l
JOIN sky_cell AS sc ON sc.id = l.sky_cell_id
LEFT JOIN layer_member AS lm ON lm.layer_id = l.id
LEFT JOIN exposure AS e ON e.id = lm.exposure_id
LEFT JOIN product AS p ON p.layer_id = l.id
WHERE l.layer_set = 'all'
GROUP BY l.id, sc.id, p.id;

COMMENT ON VIEW v_layer_coverage IS
    'Per layer: member exposures, exposure time (s), dates, proposals, NEW count, product status none/current/stale';

-- One row per projection cell that has sky cells with exposures or layers (n_layers and
-- n_products count the archive layers, set 'all', since migration 0006).
CREATE VIEW v_projection_cell_coverage AS
WITH touched AS (
    SELECT
        sc.projection_cell_id,
        count(DISTINCT esc.sky_cell_id) AS n_sky_cells,
        count(DISTINCT e.id) FILTER (WHERE e.excluded_reason IS NULL) AS n_exposures,
        count(DISTINCT e.id) FILTER (WHERE e.excluded_reason IS NOT NULL) AS n_excluded
    FROM exposure_sky_cell AS esc
    JOIN sky_cell AS sc ON sc.id = esc.sky_cell_id
    JOIN exposure AS e ON e.id = esc.exposure_id
    GROUP BY sc.projection_cell_id
),
layers AS (
    SELECT sc.projection_cell_id, count(l.id) AS n_layers, count(p.id) AS n_products
    FROM layer AS l
    JOIN sky_cell AS sc ON sc.id = l.sky_cell_id
    LEFT JOIN product AS p ON p.layer_id = l.id
    WHERE l.layer_set = 'all'
    GROUP BY sc.projection_cell_id
)
SELECT
    pc.id AS projection_cell_id,
    pc.ra_deg,
    pc.dec_deg,
    coalesce(t.n_sky_cells, 0) AS n_sky_cells,
    coalesce(t.n_exposures, 0) AS n_exposures,
    coalesce(t.n_excluded, 0) AS n_excluded,
    coalesce(ly.n_layers, 0) AS n_layers,
    coalesce(ly.n_products, 0) AS n_products
FROM projection_cell AS pc
LEFT JOIN touched AS t ON t.projection_cell_id = pc.id
LEFT JOIN layers AS ly ON ly.projection_cell_id = pc.id
WHERE t.projection_cell_id IS NOT NULL OR ly.projection_cell_id IS NOT NULL;

COMMENT ON VIEW v_projection_cell_coverage IS
    'Per touched projection cell: sky cells with exposures, usable and excluded exposures, layers, products';

-- One row per instrument/detector/filter: how much sky its usable exposures cover.
-- area_deg2 is the union of the chips' HEALPix ranges (overlaps counted once);
-- footprint_sum_deg2 adds every chip's area, so footprint_sum_deg2 / area_deg2 is the
-- mean depth in exposures. Excluded exposures cover nothing here; n_excluded counts them.
CREATE VIEW v_filter_area AS
WITH coverage AS (
    SELECT
        e.instrument,
        e.detector,
        e.filter,
        mvm_area_deg2(range_agg(h.hpx)) AS area_deg2,
        mvm_pixels_area_deg2(sum(upper(h.hpx) - lower(h.hpx))) AS footprint_sum_deg2
    FROM exposure AS e
    JOIN chip AS c ON c.exposure_id = e.id
    JOIN chip_hpx AS h ON h.chip_id = c.id
    WHERE e.excluded_reason IS NULL
    GROUP BY e.instrument, e.detector, e.filter
),
counts AS (
    SELECT
        instrument,
        detector,
        filter,
        count(*) FILTER (WHERE excluded_reason IS NULL) AS n_exposures,
        count(*) FILTER (WHERE excluded_reason IS NOT NULL) AS n_excluded,
        coalesce(sum(exptime) FILTER (WHERE excluded_reason IS NULL), 0) AS total_exptime_s
    FROM exposure
    GROUP BY instrument, detector, filter
)
SELECT
    n.instrument,
    n.detector,
    n.filter,
    n.n_exposures,
    n.n_excluded,
    n.total_exptime_s,
    coalesce(cv.area_deg2, 0) AS area_deg2,
    coalesce(cv.footprint_sum_deg2, 0) AS footprint_sum_deg2
FROM counts AS n
LEFT JOIN coverage AS cv USING (instrument, detector, filter);

COMMENT ON VIEW v_filter_area IS
    'Per instrument/detector/filter: usable and excluded exposures, exposure time (s), union sky area and summed chip area (deg2)';

-- Excluded exposures by kind (migration 0004): operator, trailed, alignment (exposure_exclusion)
-- and the ingest rules' categories (exposure.excluded_reason up to " ("; 'superseded').
CREATE VIEW v_exclusion_kind AS
SELECT kind, count(*) AS n_exposures
FROM (
    SELECT x.kind FROM exposure_exclusion AS x
    UNION ALL
    SELECT CASE WHEN starts_with(e.excluded_reason, 'superseded by ') THEN 'superseded'
                ELSE split_part(e.excluded_reason, ' (', 1) END
    FROM exposure AS e
    WHERE e.excluded_reason IS NOT NULL
) AS k (kind)
GROUP BY kind;
COMMENT ON VIEW v_exclusion_kind IS
    'Excluded exposures by kind: operator, trailed, alignment and the ingest rules'' categories';

-- One row per layer of every layer set (migration 0006): 'all' and the time-domain
-- layers (year, exptime, epochs; an exposure is a member of one layer per set, so do not
-- sum exposures over sets). first_date/last_date give the dates the members span.
CREATE VIEW v_layer_set_coverage AS
SELECT
    l.id AS layer_id,
    l.name AS layer_name,
    sc.id AS sky_cell_id,
    sc.name AS sky_cell_name,
    sc.projection_cell_id,
    l.instrument,
    l.detector,
    l.filter,
    l.scale,
    l.layer_set,
    l.layer_key,
    count(e.id) AS n_exposures,
    count(e.id) FILTER (WHERE lm.status = 'NEW') AS n_new,
    coalesce(sum(e.exptime), 0) AS total_exptime_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY e.exptime) AS median_exptime_s,
    min(coalesce(e.date_obs, date '1858-11-17' + floor(e.expstart)::int)) AS first_date,
    max(coalesce(e.date_obs, date '1858-11-17' + floor(e.expstart)::int)) AS last_date,
    coalesce(
        array_agg(DISTINCT e.proposid ORDER BY e.proposid) FILTER (WHERE e.proposid IS NOT NULL),
        '{}'
    ) AS proposals,
    CASE
        WHEN p.id IS NULL THEN 'none'
        WHEN count(e.id) FILTER (WHERE lm.status = 'NEW') > 0 THEN 'stale'
        ELSE 'current'
    END AS product_status,
    p.path AS product_path
FROM layer AS l
JOIN sky_cell AS sc ON sc.id = l.sky_cell_id
LEFT JOIN layer_member AS lm ON lm.layer_id = l.id
LEFT JOIN exposure AS e ON e.id = lm.exposure_id
LEFT JOIN product AS p ON p.layer_id = l.id
GROUP BY l.id, sc.id, p.id;

COMMENT ON VIEW v_layer_set_coverage IS
    'Per layer of every layer set (all, year, exptime, epochs): members, exposure time (s), dates, NEW count, product status';
