//! Development CA and node certificates.
