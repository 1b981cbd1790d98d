//! ztlake-ingest
