-- The planner's SQL: mvmdb/db/members.py (plan_rows) and mvmdb/db/jobs.py (enqueue_jobs,
-- open_jobs) load this file (shipped inside the package by a wheel) and run these
-- statements as written.
--
-- Statements are separated by "-- name <statement>" lines. Bind parameters are written
-- :like_this (SQLAlchemy text()); casts use CAST(...), not the double-colon form, so that
-- they are not mistaken for parameters.


-- name plan_rows
-- The plan: every layer with at least one NEW member, expanded to the poller lines of
-- its sky cell. A layer is always redrawn from all its members, so all members of an
-- affected layer are listed: NEW ones as NEW, already drawn ones as OLD. An exposure in
-- several affected layers of one sky cell (WFC3/IR fine and coarse) is one line, NEW if
-- it is NEW in any of them. Layers without a NEW member are not listed, nor layers of a
-- time-domain layer set (year, exptime, epochs; layer.layer_set) that no enabled
-- layer_set entry applies to (mvm layers disable keeps them as they are). A new exposure
-- is NEW in its 'all' layers and in its own layer of each enabled set only (its year, its
-- class, its epochs), so the other layers of a set (earlier years) are not listed.
--
-- dirty_layer reads only the partial index ix_layer_member_new (layer_id WHERE
-- status = 'NEW'), which holds the NEW rows alone: a small fraction of layer_member in
-- steady state, so the cost follows the work to do, not the size of the catalog.
--
-- Rows come ordered by sky cell (ids P*10000 + x*100 + y sort as the names do), then by
-- file name in byte order. The layers column holds the affected layers the exposure is a
-- member of, blank-separated (names have no blanks; a string is much cheaper to fetch
-- than a text[]). The skycells parameter is NULL (all sky cells) or an array of names.
--
-- Cost (benchmarks/bench_plan.py, worst case: NEW rows scattered over every layer): the
-- memberships of the affected layers are aggregated per (sky cell, exposure) on integer
-- keys first (member_line), so the wide exposure columns are joined and sorted once per
-- poller line, not once per membership (with time-domain sets on, an exposure is a member
-- of its 'all' layer and of its year layer, ...).
WITH dirty_layer AS (
    SELECT DISTINCT layer_id
    FROM layer_member
    WHERE status = 'NEW'
), member_line AS (
    SELECT
        l.sky_cell_id,
        m.exposure_id,
        bool_or(m.status = 'NEW')                          AS is_new,
        max(m.generation) FILTER (WHERE m.status = 'NEW')  AS new_generation,
        string_agg(l.name, ' ')                            AS layers
    FROM dirty_layer  AS d
    JOIN layer        AS l ON l.id = d.layer_id
    JOIN layer_member AS m ON m.layer_id = l.id
    WHERE (CAST(:skycells AS text[]) IS NULL
           OR l.sky_cell_id IN (SELECT id FROM sky_cell WHERE name = ANY (CAST(:skycells AS text[]))))
      AND (l.layer_set = 'all' OR EXISTS (       -- time-domain layers of enabled sets only (mvmdb.db.layersets.active_sql)
          SELECT 1 FROM layer_set AS c
          WHERE c.enabled AND c.name = l.layer_set AND (c.sky_cell_id IS NULL OR c.sky_cell_id = l.sky_cell_id)))
    GROUP BY l.sky_cell_id, m.exposure_id        -- one line per exposure and sky cell
)
SELECT
    s.id                                                   AS sky_cell_id,
    s.name                                                 AS skycell,
    e.id                                                   AS exposure_id,
    e.filename,
    e.proposid                                             AS proposal_id,
    e.program_id,
    e.obset_id,
    e.exptime,
    e.filter,
    e.detector,
    CASE WHEN a.is_new THEN 'NEW' ELSE 'OLD' END           AS status,
    a.new_generation,
    a.layers,
    e.path
FROM member_line AS a
JOIN sky_cell    AS s ON s.id = a.sky_cell_id
JOIN exposure    AS e ON e.id = a.exposure_id
ORDER BY s.id, e.filename COLLATE "C", e.id;


-- name enqueue_jobs
-- One queued job per planned sky cell, idempotently: the only statement that creates
-- jobs. The arrays give, per sky cell, the highest NEW member generation its poller
-- covers and the poller's path (NULL keeps the queued job's path).
--   * no open job: a queued job is inserted;
--   * a queued job exists (unique partial index uq_job_sky_cell_queued): it is extended,
--     its generation raised to the new maximum and its poller path updated; planning
--     twice with nothing new changes nothing (the DO UPDATE ... WHERE filters the row);
--   * a running job exists: it is left alone and a new queued job is added beside it,
--     unless the running job already covers every NEW member planned here (and
--     :beside_running is false: mvm process of one sky cell always queues one).
-- RETURNING gives the jobs inserted (created) or extended; the rest are unchanged.
WITH planned AS (
    SELECT *
    FROM unnest(
        CAST(:sky_cell_ids AS integer[]),
        CAST(:generations AS bigint[]),
        CAST(:poller_paths AS text[])
    ) AS p (sky_cell_id, generation, poller_path)
)
INSERT INTO job AS j (sky_cell_id, generation, poller_path)
SELECT p.sky_cell_id, p.generation, p.poller_path
FROM planned AS p
WHERE CAST(:beside_running AS boolean) OR NOT EXISTS (
    SELECT 1
    FROM job AS r
    WHERE r.sky_cell_id = p.sky_cell_id
      AND r.state = 'running'
      AND r.generation >= p.generation
)
ON CONFLICT (sky_cell_id) WHERE state = 'queued' DO UPDATE
SET generation  = GREATEST(j.generation, EXCLUDED.generation),
    poller_path = COALESCE(EXCLUDED.poller_path, j.poller_path)
WHERE j.generation < EXCLUDED.generation
   OR j.poller_path IS DISTINCT FROM COALESCE(EXCLUDED.poller_path, j.poller_path)
RETURNING j.id, j.sky_cell_id, j.generation, (j.xmax = 0) AS created;


-- name open_jobs
-- The open job of each sky cell (the queued one if any, else the newest running one).
SELECT DISTINCT ON (sky_cell_id) sky_cell_id, id, state, generation
FROM job
WHERE sky_cell_id = ANY (CAST(:sky_cell_ids AS integer[]))
  AND state IN ('queued', 'running')
ORDER BY sky_cell_id, (state = 'queued') DESC, id DESC;
