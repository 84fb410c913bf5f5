"""mvmdb: a PostgreSQL-backed catalog, planner and processor for Hubble multi-visit mosaics.

The package reads as the pipeline (docs/architecture.md has the details)::

    sky/      pure sky geometry: projection cells, sky cells, names, ids, WCS, overlaps
    rules.py  pure archive conventions: filters, exclusions, layer keys, file names
    fitsio/   the only place that opens FITS files (one exposure-header parser)
    db/       the only place that runs SQL: models, engine, exposures, members, jobs,
              snapshot, runs, coverage, products, bulk loaders
    ingest/   files -> catalog rows
    plan      NEW layer members -> poller files + jobs
    process/  poller/job -> drizzled sky cell layer products
    simulate/ synthetic archive exposures with a truth catalogue
    cli/      the ``mvm`` command, thin wrappers over the functions above
"""

__version__ = "0.1.0"
