//! ztlake
