//! A Bayeux 1.0 (CometD) long-polling client.
