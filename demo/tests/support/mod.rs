//! Shared pieces of the browser tests: the browser harness and the demo's
//! test-facing contract (dev inbox, dev clock, TOTP from the enrolment page).

pub mod browser;
pub mod demo;
