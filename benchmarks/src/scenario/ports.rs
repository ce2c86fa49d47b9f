//! Free loopback ports for the nodes a scenario starts. A port is free when both UDP (QUIC)
//! and TCP can bind it; the probe sockets close before the node binds, so another process
//! could take it in between, which is rare enough on loopback for a benchmark. (Exercised by
//! the node guard tests, which start stand-in nodes on these ports.)

use anyhow::bail;
use std::net::{TcpListener, UdpSocket};

/// Attempts before giving up on finding a port free for both protocols.
const PORT_ATTEMPTS_MAX: usize = 50;

/// A loopback port that UDP and TCP can both bind right now.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..PORT_ATTEMPTS_MAX {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no loopback port free for both UDP and TCP after {PORT_ATTEMPTS_MAX} attempts")
}
