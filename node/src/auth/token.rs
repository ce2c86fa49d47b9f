//! Tokens (decision D21): `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`,
//! unpadded, where the payload is a version byte (1), the auth revision the token was issued
//! at (u64 big-endian), its expiry in seconds since the Unix epoch (u64 big-endian) and the
//! user name (UTF-8). The key is the auth store's, replicated through the meta shard, so any
//! node verifies a token any node issued; nothing about a token is kept in memory.

use atoll_proto::AtollError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

const TOKEN_V1: u8 = 1;
/// Version, revision and expiry.
const FIXED_BYTES: usize = 1 + 8 + 8;
/// The longest token accepted: a name longer than this is not a user's.
const TOKEN_BYTES_MAX: usize = 4096;

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The user.
    pub user: String,
    /// The auth revision it was issued at.
    pub revision: u64,
    /// Expiry, seconds since the Unix epoch.
    pub expires_unix: u64,
}

/// A token for `claims`, signed with `key`.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    let mut payload = Vec::with_capacity(FIXED_BYTES + claims.user.len());
    payload.push(TOKEN_V1);
    payload.extend_from_slice(&claims.revision.to_be_bytes());
    payload.extend_from_slice(&claims.expires_unix.to_be_bytes());
    payload.extend_from_slice(claims.user.as_bytes());
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &payload);
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The claims of `token` if `key` signed it and it has not expired at `now_unix`; otherwise
/// etcd's "invalid auth token".
pub fn verify(key: &[u8], token: &str, now_unix: u64) -> Result<Claims, AtollError> {
    let invalid = || AtollError::InvalidAuthToken;
    if token.len() > TOKEN_BYTES_MAX || key.is_empty() {
        return Err(invalid());
    }
    let (payload, tag) = token.split_once('.').ok_or_else(invalid)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
    // Constant-time comparison of the tag.
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), &payload, &tag).map_err(|_| invalid())?;
    if payload.len() < FIXED_BYTES || payload[0] != TOKEN_V1 {
        return Err(invalid());
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let claims = Claims {
        revision: word(1),
        expires_unix: word(9),
        user: String::from_utf8(payload[FIXED_BYTES..].to_vec()).map_err(|_| invalid())?,
    };
    if claims.expires_unix <= now_unix {
        return Err(invalid());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims { user: "alice".into(), revision: 7, expires_unix: 1_000 }
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_until_it_expires() {
        let token = sign(b"key-1", &claims());
        assert_eq!(verify(b"key-1", &token, 999), Ok(claims()));
        assert_eq!(verify(b"key-1", &token, 1_000), Err(AtollError::InvalidAuthToken));
        assert_eq!(verify(b"key-2", &token, 0), Err(AtollError::InvalidAuthToken));
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let token = sign(b"key", &claims());
        let (payload, tag) = token.split_once('.').expect("two parts");
        // Another user, revision or expiry under the original tag.
        for forged in [
            Claims { user: "root".into(), ..claims() },
            Claims { revision: 8, ..claims() },
            Claims { expires_unix: u64::MAX, ..claims() },
        ] {
            let other = sign(b"key", &forged);
            let (forged_payload, _) = other.split_once('.').expect("two parts");
            let spliced = format!("{forged_payload}.{tag}");
            assert_eq!(verify(b"key", &spliced, 0), Err(AtollError::InvalidAuthToken));
        }
        // A flipped tag character, a truncated tag, garbage.
        let mut flipped = tag.to_string().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{payload}.{}", String::from_utf8(flipped).expect("ascii"));
        for bad in [flipped, format!("{payload}.{}", &tag[..10]), "nonsense".into(), String::new()]
        {
            assert_eq!(verify(b"key", &bad, 0), Err(AtollError::InvalidAuthToken), "{bad}");
        }
    }
}
