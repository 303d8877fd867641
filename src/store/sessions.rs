//! The dashboard's sessions, kept server-side in the index database (`db/`, tree
//! `sessions`), so that a browser's cookie holds an opaque random id instead of the user's
//! token, sign-out ends a session for good, and sessions outlive a restart of the service.
//!
//! A session is stored under the SHA-256 of its id, never the id: whoever reads the data
//! dir learns who is signed in, not a cookie to present. Its CSRF token is kept the same
//! way (its hash), so the token exists in clear only in the sign-in response and in the
//! browser that received it (see `server::csrf`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The user of the operator's config who signed in.
    pub user: String,
    /// SHA-256 (hex) of the session's CSRF token.
    pub csrf_sha256: String,
    /// What the user's token was at sign-in (a hash of its `token_sha256`): a token
    /// changed in the config ends the sessions it opened.
    pub token_binding: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        hash_hex(presented).as_bytes().ct_eq(self.csrf_sha256.as_bytes()).into()
    }
}

/// A new session as the browser gets it, once: the id (for the cookie) and the CSRF
/// token (for the page's script). Neither is stored.
#[derive(Debug)]
pub struct Issued {
    pub id: String,
    pub csrf: String,
    pub session: Session,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the session store: {0}")]
    Sled(#[from] sled::Error),
    #[error("a corrupt session record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the operating system gave no randomness for a session id: {0}")]
    Random(getrandom::Error),
}

/// The sessions tree of a store (`Store::sessions`).
pub struct Sessions<'a> {
    tree: &'a sled::Tree,
}

/// Session ids and CSRF tokens: 32 random bytes from the operating system, in hex.
const SECRET_BYTES: usize = 32;

fn secret() -> Result<String, SessionError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(SessionError::Random)?;
    Ok(hex::encode(bytes))
}

fn hash_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The key a session id is stored under; `None` for what cannot be an id (so that no
/// lookup is made for it).
fn key(id: &str) -> Option<[u8; 32]> {
    let well_formed = id.len() == SECRET_BYTES * 2 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| Sha256::digest(id.as_bytes()).into())
}

impl<'a> Sessions<'a> {
    pub(super) fn new(tree: &'a sled::Tree) -> Sessions<'a> {
        Sessions { tree }
    }

    /// Opens a session for `user` lasting `ttl` from `now`, written to disk before it is
    /// handed out.
    pub fn create(&self, user: &str, token_binding: String, ttl: chrono::Duration, now: DateTime<Utc>) -> Result<Issued, SessionError> {
        let (id, csrf) = (secret()?, secret()?);
        let session = Session { user: user.to_string(), csrf_sha256: hash_hex(&csrf), token_binding, created_at: now, expires_at: now + ttl };
        let key = key(&id).expect("a fresh id is well formed");
        self.tree.insert(key, serde_json::to_vec(&session)?)?;
        self.tree.flush()?;
        Ok(Issued { id, csrf, session })
    }

    /// The live session with this id. An expired one is removed and not returned.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Session>, SessionError> {
        let Some(key) = key(id) else { return Ok(None) };
        let Some(bytes) = self.tree.get(key)? else { return Ok(None) };
        let session: Session = serde_json::from_slice(&bytes)?;
        if session.is_expired(now) {
            self.tree.remove(key)?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// Ends a session (sign-out); whether there was one.
    pub fn remove(&self, id: &str) -> Result<bool, SessionError> {
        let Some(key) = key(id) else { return Ok(false) };
        let removed = self.tree.remove(key)?.is_some();
        self.tree.flush()?;
        Ok(removed)
    }

    /// Removes every session expired at `now` (also those never presented again); how many.
    pub fn remove_expired(&self, now: DateTime<Utc>) -> Result<usize, SessionError> {
        let mut gone = 0;
        for item in self.tree.iter() {
            let (key, bytes) = item?;
            // An unreadable record is no session anyone can use: it goes too.
            let expired = serde_json::from_slice::<Session>(&bytes).map(|s| s.is_expired(now)).unwrap_or(true);
            if expired {
                self.tree.remove(key)?;
                gone += 1;
            }
        }
        Ok(gone)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::Store;

    fn at(minutes: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 12, 1, 9, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn a_session_is_found_by_its_id_until_it_expires_and_is_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let issued = store.sessions().create("rita", "b1".into(), Duration::hours(12), at(0)).unwrap();
        assert_eq!(issued.id.len(), 64, "32 random bytes in hex");
        assert_ne!(issued.id, issued.csrf);
        let found = store.sessions().get(&issued.id, at(11 * 60 + 59)).unwrap().expect("live a minute before its end");
        assert_eq!((found.user.as_str(), found.expires_at), ("rita", at(12 * 60)));
        assert!(found.csrf_matches(&issued.csrf) && !found.csrf_matches(&issued.id) && !found.csrf_matches(""));
        assert_eq!(store.sessions().get(&issued.id, at(12 * 60)).unwrap(), None, "refused at its expiry");
        assert!(store.sessions().is_empty(), "and removed");
    }

    #[test]
    fn only_hashes_are_stored_and_sign_out_ends_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let issued = store.sessions().create("rita", "b1".into(), Duration::hours(1), at(0)).unwrap();
        for item in store.sessions.iter() {
            let (key, value) = item.unwrap();
            let (key, value) = (hex::encode(&key), String::from_utf8_lossy(&value).into_owned());
            for secret in [&issued.id, &issued.csrf] {
                assert!(!key.contains(secret.as_str()) && !value.contains(secret.as_str()), "{key} {value}");
            }
        }
        assert!(store.sessions().remove(&issued.id).unwrap());
        assert_eq!(store.sessions().get(&issued.id, at(1)).unwrap(), None);
        assert!(!store.sessions().remove(&issued.id).unwrap(), "nothing left to end");
    }

    #[test]
    fn sessions_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let issued = {
            let store = Store::open(dir.path()).unwrap();
            store.sessions().create("dev", "b2".into(), Duration::hours(1), at(0)).unwrap()
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.sessions().get(&issued.id, at(5)).unwrap().map(|s| s.user), Some("dev".to_string()));
    }

    #[test]
    fn what_is_not_an_id_finds_nothing_and_expired_sessions_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let short = store.sessions().create("a", "b".into(), Duration::minutes(5), at(0)).unwrap();
        let long = store.sessions().create("b", "b".into(), Duration::hours(5), at(0)).unwrap();
        for bad in ["", "rm-token", &short.id.to_uppercase(), &short.id[..63]] {
            assert_eq!(store.sessions().get(bad, at(1)).unwrap(), None, "{bad}");
        }
        assert_eq!(store.sessions().remove_expired(at(10)).unwrap(), 1);
        assert_eq!(store.sessions().len(), 1);
        assert!(store.sessions().get(&long.id, at(10)).unwrap().is_some());
        assert!(store.sessions().get(&short.id, at(1)).unwrap().is_none(), "the swept one is gone for good");
    }
}
