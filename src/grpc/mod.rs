//! The control plane. [`state`] is what pipelines publish for it.

pub mod state;
