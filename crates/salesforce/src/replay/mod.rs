//! Replay markers and stores. PLACEHOLDER
