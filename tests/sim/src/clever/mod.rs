//! Fake Clever Cloud API v2 with its git deployment endpoint.
