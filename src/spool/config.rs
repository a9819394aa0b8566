//! `[spool]`: the directory `run` takes files from.

use serde::{Deserialize, Serialize};

/// `[spool]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// When set and `run` is given no inputs, the run processes the files in `<dir>/inbox`
    /// (claimed into `claimed/`, then moved to `done/` or `failed/`).
    pub dir: String,
}
