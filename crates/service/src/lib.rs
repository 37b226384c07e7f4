//! The sfstream service runtime.
