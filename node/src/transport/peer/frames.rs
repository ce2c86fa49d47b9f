//! Reading and writing [`PeerFrame`]s on QUIC streams: the header first, so an oversized or
//! foreign frame is refused before its payload is read, then a buffer that grows as bytes
//! arrive rather than trusting the announced length.

use super::limits::PEER_READ_CHUNK_BYTES;
use atoll_proto::encode_frame;
use atoll_proto::frame::{FRAME_HEADER_BYTES, FrameError, decode_payload, frame_payload_len};
use atoll_proto::peer::PeerFrame;
use quinn::{ReadExactError, RecvStream, SendStream};

/// Why no frame came out of a stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The stream or connection failed: nobody to blame on this side.
    #[error("stream failed: {0}")]
    Stream(String),
    /// The bytes are not a valid frame: the peer is broken or hostile.
    #[error("bad frame: {0}")]
    Protocol(#[from] FrameError),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// Reads one frame of at most `max_bytes`; `Ok(None)` when the stream ended cleanly between
/// frames.
pub(crate) async fn read_frame(
    recv: &mut RecvStream,
    max_bytes: usize,
) -> Result<Option<PeerFrame>, ReadError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(_)) => return Err(ReadError::Truncated),
        Err(ReadExactError::ReadError(e)) => return Err(ReadError::Stream(e.to_string())),
    }
    let len = frame_payload_len(&header, max_bytes)?;
    let payload = read_raw(recv, len).await?;
    Ok(Some(decode_payload(&payload)?))
}

/// Reads exactly `len` bytes (already checked against a limit).
pub(crate) async fn read_raw(recv: &mut RecvStream, len: usize) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::with_capacity(len.min(PEER_READ_CHUNK_BYTES));
    while buf.len() < len {
        let want = (len - buf.len()).min(PEER_READ_CHUNK_BYTES);
        match recv.read_chunk(want, true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(ReadError::Truncated),
            Err(e) => return Err(ReadError::Stream(e.to_string())),
        }
    }
    Ok(buf)
}

/// Encodes and writes one frame.
pub(crate) async fn write_frame(send: &mut SendStream, frame: &PeerFrame) -> Result<(), String> {
    let bytes = encode_frame(frame).map_err(|e| e.to_string())?;
    send.write_all(&bytes).await.map_err(|e| e.to_string())
}
