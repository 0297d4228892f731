//! Stable lowercase names of core enums, for output.

use verdict_core::receipt::{Decision, Kind};

/// `allow`, `deny`, `escalate` or `not_applicable`.
pub fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
        Decision::Escalate => "escalate",
        Decision::NotApplicable => "not_applicable",
    }
}

/// `screen` or `check`.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Screen => "screen",
        Kind::Check => "check",
    }
}
