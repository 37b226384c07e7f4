//! sfstream: real-time Salesforce integration.
#![warn(missing_docs)]

pub use sfstream_emulator as emulator;
