"""Django's SQLite engine for the embedded default, creating the database's directory on first
connect (settings create no directories at import)."""
