//! CDC field bitmaps (to be written).
