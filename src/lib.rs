//! sfstream: real-time Salesforce integration.
pub use sfstream_emulator as emulator;
