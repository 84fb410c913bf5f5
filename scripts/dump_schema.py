#!/usr/bin/env python
"""Write schema/ddl.sql from the models (run via `make schema`)."""

from pathlib import Path

from mvmdb.db.ddl import schema_ddl

out = Path(__file__).resolve().parents[1] / "schema" / "ddl.sql"
out.write_text(schema_ddl())
print(f"wrote {out}")
