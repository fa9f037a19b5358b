//! transcript tests
