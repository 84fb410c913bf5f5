-- mvmdb SQL cookbook: questions about coverage, answered in SQL.
-- Each query: a "-- name: <slug>" line, a one-line description, the query. Parameters are
-- :name binds (SQLAlchemy text(); in psql, \set name value and write :'name' for text).
-- The same queries are in README.md ("SQL cookbook"); tests/db/test_cookbook.py runs them all.
-- Units: seconds, deg², degrees. Views and mvm_area_deg2() are defined in schema/views.sql.

-- name: filter-area
-- Sky area covered per instrument/detector/filter (union of chips, deg²) and mean depth, largest first.
SELECT instrument, detector, filter, n_exposures, n_excluded, total_exptime_s, area_deg2,
       footprint_sum_deg2 / nullif(area_deg2, 0) AS mean_depth
FROM v_filter_area
ORDER BY area_deg2 DESC, instrument, detector, filter;

-- name: layers-of-sky-cell
-- Every layer of the sky cell :sky_cell: exposures, NEW members, exposure time, dates, proposals, product status.
SELECT layer_name, n_exposures, n_new, total_exptime_s, median_exptime_s, first_date, last_date,
       proposals, product_status
FROM v_layer_coverage
WHERE sky_cell_name = :sky_cell
ORDER BY layer_name;

-- name: layers-needing-products
-- Layers whose product is missing (none) or stale (has NEW members), most NEW members first.
SELECT layer_name, product_status, n_new, n_exposures
FROM v_layer_coverage
WHERE product_status <> 'current'
ORDER BY n_new DESC, layer_name;

-- name: busiest-projection-cells
-- The :limit projection cells with the most usable exposures.
SELECT projection_cell_id, ra_deg, dec_deg, n_sky_cells, n_exposures, n_layers, n_products
FROM v_projection_cell_coverage
ORDER BY n_exposures DESC, projection_cell_id
LIMIT :limit;

-- name: exposures-at-pixel
-- Usable exposures (not excluded by ingest, the operator or mvm qa) whose HEALPix cover holds
-- :pixel = healpy.ang2pix(2**29, ra, dec, nest=True, lonlat=True).
SELECT DISTINCT e.id, e.ipppssoot, e.instrument, e.detector, e.filter, e.exptime, e.date_obs
FROM chip_hpx AS h
JOIN chip AS c ON c.id = h.chip_id
JOIN exposure AS e ON e.id = c.exposure_id
WHERE h.hpx @> CAST(:pixel AS bigint) AND e.excluded_reason IS NULL
  AND NOT EXISTS (SELECT 1 FROM exposure_exclusion AS x WHERE x.ipppssoot = e.ipppssoot)
ORDER BY e.id;

-- name: exposures-in-ranges
-- Usable exposures overlapping order-29 ranges [:lo, :hi) (a cone: mvmdb.sky.coverage_maps.cone_ranges).
SELECT DISTINCT e.id, e.ipppssoot, e.instrument, e.detector, e.filter, e.exptime, e.date_obs
FROM unnest(CAST(:lo AS bigint[]), CAST(:hi AS bigint[])) AS q(lo, hi)
JOIN chip_hpx AS h ON h.hpx && int8range(q.lo, q.hi)
JOIN chip AS c ON c.id = h.chip_id
JOIN exposure AS e ON e.id = c.exposure_id
WHERE e.excluded_reason IS NULL
  AND NOT EXISTS (SELECT 1 FROM exposure_exclusion AS x WHERE x.ipppssoot = e.ipppssoot)
ORDER BY e.id;

-- name: exposures-at-pixel-between
-- What HST saw at :pixel (as exposures-at-pixel) between MJD :mjd_from and :mjd_to (UTC, closed): usable, not excluded by the operator or mvm qa.
SELECT DISTINCT e.id, e.ipppssoot, e.instrument, e.detector, e.filter, e.exptime, e.expstart, e.expend
FROM chip_hpx AS h
JOIN chip AS c ON c.id = h.chip_id
JOIN exposure AS e ON e.id = c.exposure_id
WHERE h.hpx @> CAST(:pixel AS bigint) AND e.excluded_reason IS NULL
  AND NOT EXISTS (SELECT 1 FROM exposure_exclusion AS x WHERE x.ipppssoot = e.ipppssoot)
  AND e.expstart <= CAST(:mjd_to AS float8) AND e.expend >= CAST(:mjd_from AS float8)
ORDER BY e.id;

-- name: area-in-both-filters
-- Sky area (deg²) observed in both :filter_a and :filter_b: the intersection of their HEALPix unions.
WITH covered AS (
    SELECT e.filter, range_agg(h.hpx) AS hpx
    FROM exposure AS e
    JOIN chip AS c ON c.exposure_id = e.id
    JOIN chip_hpx AS h ON h.chip_id = c.id
    WHERE e.excluded_reason IS NULL AND e.filter IN (:filter_a, :filter_b)
    GROUP BY e.filter
)
SELECT mvm_area_deg2(a.hpx * b.hpx) AS area_deg2
FROM covered AS a, covered AS b
WHERE a.filter = :filter_a AND b.filter = :filter_b;

-- name: proposals-in-sky-cell
-- Proposals with usable exposures touching the sky cell :sky_cell, with their filters and total time.
SELECT e.proposid, count(*) AS n_exposures, array_agg(DISTINCT e.filter ORDER BY e.filter) AS filters,
       sum(e.exptime) AS total_exptime_s
FROM exposure_sky_cell AS esc
JOIN sky_cell AS sc ON sc.id = esc.sky_cell_id
JOIN exposure AS e ON e.id = esc.exposure_id
WHERE sc.name = :sky_cell AND e.excluded_reason IS NULL
GROUP BY e.proposid
ORDER BY e.proposid;

-- name: exposures-per-year
-- Usable exposures and hours of exposure time per filter and year (DATE-OBS, else the day of EXPSTART).
SELECT filter,
       extract(year FROM coalesce(date_obs, date '1858-11-17' + floor(expstart)::int))::int AS year,
       count(*) AS n_exposures,
       sum(exptime) / 3600 AS hours
FROM exposure
WHERE excluded_reason IS NULL
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: excluded-exposures
-- Exposures left out of MVM, with the reason.
SELECT ipppssoot, filetype, instrument, detector, filter, excluded_reason
FROM exposure
WHERE excluded_reason IS NOT NULL
ORDER BY ipppssoot, filetype;

-- name: exposures-flagged-this-week
-- Exposures a pixel quality check of mvm qa flagged in the last 7 days, and how they are excluded now.
SELECT q.ipppssoot, q."check", q.value, q.reason, q.checked_at, x.kind AS excluded_as
FROM qa_check AS q
LEFT JOIN exposure_exclusion AS x ON x.ipppssoot = q.ipppssoot
WHERE q.flagged AND q.checked_at >= now() - interval '7 days'
ORDER BY q.checked_at DESC, q.ipppssoot, q."check";

-- name: layers-mixing-wcs-families
-- Layers whose checked members have more than one WCS solution family (gaia-fit, a-priori, pipeline-default).
SELECT l.name AS layer_name, array_agg(DISTINCT q.wcs_family ORDER BY q.wcs_family) AS wcs_families,
       count(DISTINCT e.id) AS n_checked
FROM layer AS l
JOIN layer_member AS m ON m.layer_id = l.id
JOIN exposure AS e ON e.id = m.exposure_id
JOIN qa_check AS q ON q.ipppssoot = e.ipppssoot AND q."check" = 'trail'
GROUP BY l.name
HAVING count(DISTINCT q.wcs_family) > 1
ORDER BY l.name;
