//! ztlake-storage
