"""mvmdb: a PostgreSQL-backed catalog, planner and processor for Hubble multi-visit mosaics.

The package reads as the pipeline::

    sky/      pure sky geometry: projection cells, sky cells, names, WCS, overlaps
    rules.py  pure archive conventions: filters, exclusions, layer keys, file names
    fitsio/   the only place that opens FITS files
    db/       models, engine (incl. embedded PostgreSQL), queries, bulk loaders
    ingest    files -> catalog rows
    plan      NEW layer members -> poller files + jobs
    process/  poller/job -> drizzled sky cell layer products
    simulate/ synthetic archive exposures with a truth catalogue
    cli/      the ``mvm`` command, thin wrappers over the functions above
"""

__version__ = "0.1.0"
