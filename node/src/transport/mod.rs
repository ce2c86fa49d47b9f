//! The QUIC endpoint that serves native clients.
