//! Deep SVDD stage library.
