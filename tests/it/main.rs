//! Integration tests, one binary (see ../lib.rs for the harness).
