//! StarRocks Stream Load emulator (see README.md in this crate).
