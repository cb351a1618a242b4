//! Binary channel frames, used once both sides have agreed on them (see the crate docs).
//!
//! Layout: one type byte, the channel number as a big-endian `u32`, then the body:
//!
//! | type | frame  | body |
//! |------|--------|------|
//! | 0    | data   | the bytes (1 ..= [`crate::MAX_DATA_FRAME_BYTES`]) |
//! | 1    | credit | big-endian `u32`: more bytes the receiver of this frame may send |
//! | 2    | eof    | none: the sender will send no more data (half close) |
//! | 3    | close  | UTF-8 reason: the channel is gone (reset), in either direction |

/// One binary frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryFrame<'a> {
    /// Bytes of a channel.
    Data {
        /// The channel.
        channel: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// Flow-control credit.
    Credit {
        /// The channel.
        channel: u32,
        /// Additional bytes the peer may send.
        bytes: u32,
    },
    /// End of the sender's data.
    Eof {
        /// The channel.
        channel: u32,
    },
    /// The channel is closed.
    Close {
        /// The channel.
        channel: u32,
        /// Why.
        reason: &'a str,
    },
}

/// Why a binary frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its header or body needs.
    Truncated,
    /// Unknown type byte.
    UnknownType(u8),
    /// A data frame that is empty or larger than the limit.
    BadDataLength(usize),
    /// A credit frame with a body other than 4 bytes.
    BadCredit,
    /// A close reason that is not UTF-8.
    BadReason,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => f.write_str("binary frame is truncated"),
            FrameError::UnknownType(t) => write!(f, "unknown binary frame type {t}"),
            FrameError::BadDataLength(n) => write!(f, "data frame of {n} bytes"),
            FrameError::BadCredit => f.write_str("credit frame without a 4-byte amount"),
            FrameError::BadReason => f.write_str("close reason is not UTF-8"),
        }
    }
}

impl std::error::Error for FrameError {}

const DATA: u8 = 0;
const CREDIT: u8 = 1;
const EOF: u8 = 2;
const CLOSE: u8 = 3;
const HEADER: usize = 5;

/// Bytes before the body of a frame.
pub const HEADER_BYTES: usize = HEADER;

/// The header of a data frame of `channel`: a sender that reads the body in right after it
/// saves the copy [`BinaryFrame::encode`] makes.
pub fn data_header(channel: u32) -> [u8; HEADER] {
    let [a, b, c, d] = channel.to_be_bytes();
    [DATA, a, b, c, d]
}

impl<'a> BinaryFrame<'a> {
    /// The channel the frame belongs to.
    pub fn channel(&self) -> u32 {
        match *self {
            BinaryFrame::Data { channel, .. }
            | BinaryFrame::Credit { channel, .. }
            | BinaryFrame::Eof { channel }
            | BinaryFrame::Close { channel, .. } => channel,
        }
    }

    /// Reads a frame from the bytes of one binary WebSocket message.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        if bytes.len() < HEADER {
            return Err(FrameError::Truncated);
        }
        let channel = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let body = &bytes[HEADER..];
        match bytes[0] {
            DATA => {
                if body.is_empty() || body.len() > crate::MAX_DATA_FRAME_BYTES {
                    return Err(FrameError::BadDataLength(body.len()));
                }
                Ok(BinaryFrame::Data {
                    channel,
                    data: body,
                })
            }
            CREDIT => {
                let amount: [u8; 4] = body.try_into().map_err(|_| FrameError::BadCredit)?;
                Ok(BinaryFrame::Credit {
                    channel,
                    bytes: u32::from_be_bytes(amount),
                })
            }
            EOF => Ok(BinaryFrame::Eof { channel }),
            CLOSE => {
                let reason = std::str::from_utf8(body).map_err(|_| FrameError::BadReason)?;
                Ok(BinaryFrame::Close { channel, reason })
            }
            other => Err(FrameError::UnknownType(other)),
        }
    }

    /// Writes the frame as the bytes of one binary WebSocket message.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body): (u8, &[u8]) = match self {
            BinaryFrame::Data { data, .. } => (DATA, data),
            BinaryFrame::Credit { .. } => (CREDIT, &[]),
            BinaryFrame::Eof { .. } => (EOF, &[]),
            BinaryFrame::Close { reason, .. } => (CLOSE, reason.as_bytes()),
        };
        let mut out = Vec::with_capacity(HEADER + body.len() + 4);
        out.push(kind);
        out.extend_from_slice(&self.channel().to_be_bytes());
        match self {
            BinaryFrame::Credit { bytes, .. } => out.extend_from_slice(&bytes.to_be_bytes()),
            _ => out.extend_from_slice(body),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_round_trips() {
        let data = vec![7u8; crate::MAX_DATA_FRAME_BYTES];
        for frame in [
            BinaryFrame::Data {
                channel: 1,
                data: b"hello",
            },
            BinaryFrame::Data {
                channel: u32::MAX,
                data: &data,
            },
            BinaryFrame::Credit {
                channel: 9,
                bytes: 262_144,
            },
            BinaryFrame::Eof { channel: 3 },
            BinaryFrame::Close {
                channel: 4,
                reason: "connection refused",
            },
            BinaryFrame::Close {
                channel: 4,
                reason: "",
            },
        ] {
            assert_eq!(BinaryFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn a_data_header_and_body_read_as_a_data_frame() {
        let mut bytes = data_header(0x0102_0304).to_vec();
        bytes.extend_from_slice(b"body");
        assert_eq!(
            BinaryFrame::decode(&bytes),
            Ok(BinaryFrame::Data {
                channel: 0x0102_0304,
                data: b"body"
            })
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(BinaryFrame::decode(&[]), Err(FrameError::Truncated));
        assert_eq!(
            BinaryFrame::decode(&[0, 0, 0, 1]),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            BinaryFrame::decode(&[0, 0, 0, 0, 1]),
            Err(FrameError::BadDataLength(0))
        );
        let too_big = vec![0u8; 5 + crate::MAX_DATA_FRAME_BYTES + 1];
        assert!(matches!(
            BinaryFrame::decode(&too_big),
            Err(FrameError::BadDataLength(_))
        ));
        assert_eq!(
            BinaryFrame::decode(&[1, 0, 0, 0, 1, 0]),
            Err(FrameError::BadCredit)
        );
        assert_eq!(
            BinaryFrame::decode(&[3, 0, 0, 0, 1, 0xff]),
            Err(FrameError::BadReason)
        );
        assert_eq!(
            BinaryFrame::decode(&[9, 0, 0, 0, 1]),
            Err(FrameError::UnknownType(9))
        );
    }
}
