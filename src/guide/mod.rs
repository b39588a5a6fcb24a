//! The guide: the reasoning behind ninsho, in prose.
//!
//! This module holds no code. Like governor's `_guide` and rustls'
//! `manual`, it gathers the documentation that belongs to no single type:
//! why the defaults are what they are, what ninsho defends against and what
//! it leaves to you, and how to plug in your own database and message
//! provider.
//!
//! | chapter | read it when |
//! |---|---|
//! | [`security_model`] | you review ninsho: what is stored and how, what is compared in constant time, what is atomic, how secrets stay out of logs, how errors fail closed |
//! | [`defaults`] | you wonder whether to change a limit: every default, the standard or practice behind it, and the knob that changes it |
//! | [`threat_model`] | you write the threat model of your service: the attackers, what stops each of them, and what is left to you |
//! | [`writing_adapters`] | you keep ninsho's records in your own database, or send its messages through your own SMS, voice or email provider |
//! | [`key_rotation`] | you replace a hashing or sealing key: the steps, how to tell when the old key can go, and what happens if it goes too early |
//!
//! The reference documentation of each module stays the authority on
//! behaviour; the guide links to it rather than repeating it, and the few
//! code blocks here are compiled and run as doc tests, so they can't drift
//! from the code.

pub mod defaults;
pub mod key_rotation;
pub mod security_model;
pub mod threat_model;
pub mod writing_adapters;
