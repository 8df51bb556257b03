//! The secrets in confirmation and unsubscribe links. Does I/O (the key
//! file, the operating system's random numbers); the derivations are pure.
//!
//! A link's token must work for as long as the subscription lasts, every
//! email must carry it, and emails are composed at send time, so herald
//! must be able to produce it again. But a copy of the state database
//! (a backup, a leak) must not hand out working links. So no token is
//! stored:
//!
//! - `state/token.key` holds 32 random bytes (mode 0600), made on the
//!   first open of the state directory;
//! - each subscriber and each pending request has a random 128-bit
//!   *nonce* in the database;
//! - the token is HMAC-SHA256(key, purpose ‖ 0 ‖ nonce), cut to 128 bits,
//!   as 32 hex digits; the purpose (`unsubscribe`, `confirm`) keeps one
//!   kind of link from being used as the other;
//! - the database keeps SHA-256 of each token, indexed, to find the row a
//!   link names; the stored hash is then compared with the link's in
//!   constant time.
//!
//! The database alone gives nonces and hashes: without the key neither
//! yields a token. The key alone gives nothing without the nonces.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The key's file name in the state directory.
pub const KEY_FILE: &str = "token.key";
const KEY_BYTES: usize = 32;
/// Hex digits in a token (128 bits).
pub const TOKEN_DIGITS: usize = 32;

pub mod secret;

/// The token key as [`secret::read`] names it.
const KEY_SECRET: secret::Kind = secret::Kind {
    what: "the token key",
    replace: "`herald rekey`",
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unreadable, or readable by others.
    #[error(transparent)]
    Secret(#[from] secret::Error),
    #[error("cannot create the token key {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the token key {} holds {found} bytes, expected {KEY_BYTES}; restore it from a backup (a new key breaks every link in mail already sent)",
        path.display()
    )]
    Length { path: PathBuf, found: usize },
}

/// What a link does; part of what the token is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe,
    Confirm,
    /// A webhook's signing secret ([`signature`]).
    Signing,
}

impl Purpose {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Purpose::Unsubscribe => b"unsubscribe",
            Purpose::Confirm => b"confirm",
            Purpose::Signing => b"webhook-signing",
        }
    }
}

/// The secret that turns nonces into tokens.
#[derive(Clone)]
pub struct Key([u8; KEY_BYTES]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// Reads `dir/token.key`, or creates it with fresh random bytes.
    pub fn load_or_create(dir: &Path) -> Result<Key, Error> {
        match Key::load(dir)? {
            Some(key) => Ok(key),
            None => Key::create(dir),
        }
    }

    /// Reads `dir/token.key`: `None` if there is none. A key that other
    /// users can read is refused, as ssh refuses such a private key.
    pub fn load(dir: &Path) -> Result<Option<Key>, Error> {
        let path = dir.join(KEY_FILE);
        match secret::read(&path, KEY_SECRET) {
            Ok(bytes) => Ok(Some(Key::from_file(&path, &bytes)?)),
            Err(error) if error.is_missing() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates `dir/token.key` with fresh random bytes. Two processes
    /// creating it at once agree on one key: the file is written under a
    /// temporary name and hard-linked into place, which fails if the
    /// other got there first (and then its key is read).
    pub fn create(dir: &Path) -> Result<Key, Error> {
        let path = dir.join(KEY_FILE);
        let (temporary, bytes) = Key::write_new(dir)?;
        let linked = match std::fs::hard_link(&temporary, &path) {
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            other => other.map(|()| true),
        };
        let _ = std::fs::remove_file(&temporary);
        let linked = linked.map_err(|source| Error::Create {
            path: path.clone(),
            source,
        })?;
        if linked {
            sync_dir(dir, &path)?;
            tracing::info!(path = %path.display(), "created the token key; back it up with the database");
            Ok(Key(bytes))
        } else {
            Key::load(dir)?.ok_or_else(|| Error::Create {
                path,
                source: std::io::ErrorKind::NotFound.into(),
            })
        }
    }

    /// Replaces `dir/token.key` with fresh random bytes (`herald rekey`).
    pub fn replace(dir: &Path) -> Result<Key, Error> {
        let path = dir.join(KEY_FILE);
        let (temporary, bytes) = Key::write_new(dir)?;
        std::fs::rename(&temporary, &path).map_err(|source| {
            let _ = std::fs::remove_file(&temporary);
            Error::Create {
                path: path.clone(),
                source,
            }
        })?;
        sync_dir(dir, &path)?;
        Ok(Key(bytes))
    }

    /// Fresh random bytes, durably in a temporary file of mode 0600 in
    /// `dir`.
    fn write_new(dir: &Path) -> Result<(PathBuf, [u8; KEY_BYTES]), Error> {
        let path = dir.join(KEY_FILE);
        let create = |source| Error::Create {
            path: path.clone(),
            source,
        };
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| create(std::io::Error::other(error)))?;
        let temporary = dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            // The mode above is subject to the umask; this is not.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(&bytes)?;
            file.sync_all()
        })();
        if let Err(source) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(create(source));
        }
        Ok((temporary, bytes))
    }

    /// Names this key without revealing it: the state database keeps it
    /// to tell a missing or different key from the one its links need.
    pub fn fingerprint(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(b"herald token key fingerprint\0");
        digest.update(self.0);
        hex(&digest.finalize()[..16])
    }

    fn from_file(path: &Path, bytes: &[u8]) -> Result<Key, Error> {
        let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| Error::Length {
            path: path.to_owned(),
            found: bytes.len(),
        })?;
        Ok(Key(key))
    }

    /// A key from known bytes, for tests.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Key {
        Key(bytes)
    }

    /// A webhook's signing secret: `whsec_` and 32 hex digits, derived
    /// from its URL, so that it is known from the request on (the
    /// confirmation post tells it to the URL's owner) and never stored.
    /// The same URL gets the same secret until `herald rekey`.
    pub fn signing_secret(&self, url: &str) -> String {
        format!("whsec_{}", self.token(Purpose::Signing, url))
    }

    /// The token of the link for `purpose` and `nonce`: 32 hex digits.
    pub fn token(&self, purpose: Purpose, nonce: &str) -> String {
        // HMAC takes keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(nonce.as_bytes());
        hex(&mac.finalize().into_bytes()[..TOKEN_DIGITS / 2])
    }
}

/// Makes a new or renamed entry of `dir` durable.
fn sync_dir(dir: &Path, path: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| Error::Create {
            path: path.to_owned(),
            source,
        })
}

/// A fresh nonce: 128 random bits from the operating system, as 32 hex
/// digits.
pub fn new_nonce() -> Result<String, std::io::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(hex(&bytes))
}

/// The `Herald-Signature` of a webhook request: `t=TIMESTAMP,v1=HEX`,
/// HEX being HMAC-SHA256 under `secret` (its bytes as written) of
/// `TIMESTAMP.BODY`, the timestamp in Unix seconds. Signing the time too
/// lets a receiver refuse old requests replayed.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex(&mac.finalize().into_bytes()))
}

/// What the database stores of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two hashes are equal, in time independent of where they
/// differ.
pub fn same_hash(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `text` has a token's shape (32 lowercase hex digits); anything
/// else is refused before the database is asked.
pub fn is_well_formed(text: &str) -> bool {
    text.len() == TOKEN_DIGITS && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() {
        // Python: hmac.new(b"secret", b'1700000000.{"a":1}', hashlib.sha256)
        assert_eq!(
            signature("secret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn tokens_depend_on_key_purpose_and_nonce() {
        let key = Key::from_bytes([7; 32]);
        let nonce = "00112233445566778899aabbccddeeff";
        let token = key.token(Purpose::Unsubscribe, nonce);
        assert!(is_well_formed(&token), "{token}");
        assert_eq!(token, key.token(Purpose::Unsubscribe, nonce));
        assert_ne!(token, key.token(Purpose::Confirm, nonce));
        assert_ne!(
            token,
            key.token(Purpose::Unsubscribe, "00112233445566778899aabbccddeefe")
        );
        assert_ne!(
            token,
            Key::from_bytes([8; 32]).token(Purpose::Unsubscribe, nonce)
        );
        // HMAC-SHA256 with key 0x07 * 32 over "unsubscribe\0" + nonce,
        // computed independently with Python's hmac module.
        assert_eq!(token, "be19efca0fcfcd38b61248b629a7acf0");
    }

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        let a = hash("0123456789abcdef0123456789abcdef");
        let b = hash("0123456789abcdef0123456789abcdee");
        assert!(same_hash(&a, &a));
        assert!(!same_hash(&a, &b));
        assert!(!same_hash(&a, &a[..31]));
    }

    #[test]
    fn only_lowercase_hex_of_the_right_length_is_well_formed() {
        assert!(is_well_formed("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
            "../../../../etc/passwd/abcdefghij",
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn the_key_is_created_once_private_and_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = Key::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Key::load_or_create(dir.path()).unwrap();
        assert_eq!(first.0, again.0);
        assert_eq!(std::fs::read(&path).unwrap(), first.0);
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [KEY_FILE]);
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = Key::load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("token.key can be read by other users (mode 640); run `chmod 600 "),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let again = Key::load(dir.path()).unwrap().unwrap();
        assert_eq!(key.fingerprint(), again.fingerprint());
    }

    #[test]
    fn a_replaced_key_differs_and_stays_private() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Key::load(dir.path()).unwrap().is_none());
        let first = Key::create(dir.path()).unwrap();
        let second = Key::replace(dir.path()).unwrap();
        assert_ne!(first.fingerprint(), second.fingerprint());
        assert_eq!(first.fingerprint().len(), 32);
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Key::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.fingerprint(), second.fingerprint());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [KEY_FILE]);
    }

    #[test]
    fn a_key_file_of_the_wrong_length_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = Key::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("token.key holds 5 bytes, expected 32"),
            "{error}"
        );
    }

    #[test]
    fn an_unreadable_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(KEY_FILE)).unwrap();
        let error = Key::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot read the token key") && error.contains("token.key"),
            "{error}"
        );
    }
}
