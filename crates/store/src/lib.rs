//! Switchboard's records in PostgreSQL or SQLite. The only crate that knows SQL.
