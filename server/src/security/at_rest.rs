//! Encryption at rest (beyond Kafka): a topic with `encryption.at.rest` set has each batch's
//! records sealed with AES-256-GCM (ring) before they reach the disk, under a key named in the
//! batch, so keys rotate without rewriting old segments.
//!
//! A sealed batch (see `riptide_engine::seal` for what the engine relies on):
//! `header (61 bytes, attr::SEALED set, batchLength and CRC of the sealed bytes) |
//! key id length u8 | key id | nonce (12 random bytes) | records encrypted + 16-byte tag`.
//! The tag also covers the header's base offset, leader epoch, magic and every field from the
//! attributes on (the associated data), so a batch cannot be moved or its header altered
//! unnoticed. Opening restores the client's batch byte for byte.
//!
//! Keys: `encryption.key.file` (lines `id=<64 hex digits>`, `#` comments) and/or the
//! environment variable `RIPTIDE_ENCRYPTION_KEYS` (`id=hex,id=hex`). New batches use
//! `encryption.key.id` (default: the last key listed) or the key a topic names.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use riptide_format::{at, attr, HEADER_BYTES};

use super::scram::random_bytes;
use crate::config::SecurityConfig;

pub const KEYS_ENV: &str = "RIPTIDE_ENCRYPTION_KEYS";
const TAG_BYTES: usize = 16;

pub struct Keyring {
    keys: HashMap<String, LessSafeKey>,
    /// The key new batches use unless a topic names another.
    pub current: String,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        write!(f, "Keyring {{ ids: {ids:?}, current: {} }}", self.current)
    }
}

fn parse_key(id: &str, hex: &str, source: &str) -> Result<LessSafeKey, String> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(format!("{source}: key id {id:?} must be 1-64 of A-Z a-z 0-9 . _ -"));
    }
    let hex = hex.trim();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{source}: key {id} must be 64 hex digits (32 bytes, AES-256)"));
    }
    let bytes: Vec<u8> =
        (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
    let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| format!("{source}: key {id} is unusable"))?;
    Ok(LessSafeKey::new(key))
}

impl Keyring {
    /// The keys the config and environment name; `None` when there are none.
    pub fn load(config: &SecurityConfig) -> Result<Option<Arc<Keyring>>, String> {
        let mut keys = HashMap::new();
        let mut order = Vec::new();
        let mut add = |id: &str, hex: &str, source: &str| -> Result<(), String> {
            let key = parse_key(id.trim(), hex, source)?;
            if keys.insert(id.trim().to_string(), key).is_some() {
                return Err(format!("{source}: key {} is listed twice", id.trim()));
            }
            order.push(id.trim().to_string());
            Ok(())
        };
        if let Some(path) = &config.encryption_key_file {
            let source = path.display().to_string();
            warn_if_readable_by_others(path);
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("encryption.key.file {source}: {e}"))?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                let (id, hex) =
                    line.split_once('=').ok_or_else(|| format!("{source}: a line is not id=hex"))?;
                add(id, hex, &source)?;
            }
        }
        if let Ok(v) = std::env::var(KEYS_ENV) {
            for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (id, hex) =
                    entry.split_once('=').ok_or_else(|| format!("{KEYS_ENV}: an entry is not id=hex"))?;
                add(id, hex, KEYS_ENV)?;
            }
        }
        let Some(last) = order.last().cloned() else {
            return match &config.encryption_key_id {
                Some(id) => {
                    Err(format!("encryption.key.id {id}: no keys (encryption.key.file or {KEYS_ENV})"))
                }
                None => Ok(None),
            };
        };
        let current = config.encryption_key_id.clone().unwrap_or(last);
        if !keys.contains_key(&current) {
            return Err(format!("encryption.key.id {current} is not among the keys loaded"));
        }
        Ok(Some(Arc::new(Keyring { keys, current })))
    }

    pub fn has(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    fn key(&self, id: &str) -> Result<&LessSafeKey, String> {
        self.keys.get(id).ok_or_else(|| format!("key {id:?} is not in the keyring"))
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!("{} is readable by other users: chmod 600 it", path.display());
        }
    }
}

/// The associated data: base offset, leader epoch, magic, and attributes..records count.
fn aad(header: &[u8]) -> [u8; 8 + 5 + (HEADER_BYTES - at::ATTRIBUTES)] {
    let mut out = [0u8; 8 + 5 + (HEADER_BYTES - at::ATTRIBUTES)];
    out[..8].copy_from_slice(&header[..8]);
    out[8..13].copy_from_slice(&header[at::PARTITION_LEADER_EPOCH..at::CRC]);
    out[13..].copy_from_slice(&header[at::ATTRIBUTES..HEADER_BYTES]);
    out
}

fn set_length_and_crc(batch: &mut [u8]) {
    riptide_format::build::update_length_and_crc(batch);
}

fn attributes(batch: &[u8]) -> i16 {
    i16::from_be_bytes([batch[at::ATTRIBUTES], batch[at::ATTRIBUTES + 1]])
}

/// Seals one topic's batches under one key.
pub struct TopicSealer {
    keyring: Arc<Keyring>,
    key_id: String,
}

impl TopicSealer {
    pub fn new(keyring: Arc<Keyring>, key_id: Option<&str>) -> Result<TopicSealer, String> {
        let key_id = key_id.unwrap_or(&keyring.current).to_string();
        keyring.key(&key_id)?;
        Ok(TopicSealer { keyring, key_id })
    }
}

impl riptide_engine::BatchSealer for TopicSealer {
    fn seal(&self, batch: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if batch.len() < HEADER_BYTES {
            return Err("batch shorter than its header".into());
        }
        let key = self.keyring.key(&self.key_id)?;
        let start = out.len();
        out.extend_from_slice(&batch[..HEADER_BYTES]);
        let sealed_attrs = attributes(batch) | attr::SEALED;
        out[start + at::ATTRIBUTES..start + at::ATTRIBUTES + 2].copy_from_slice(&sealed_attrs.to_be_bytes());
        out.push(self.key_id.len() as u8);
        out.extend_from_slice(self.key_id.as_bytes());
        let nonce_bytes = random_bytes(NONCE_LEN);
        out.extend_from_slice(&nonce_bytes);
        let body_at = out.len();
        out.extend_from_slice(&batch[HEADER_BYTES..]);
        let aad = aad(&out[start..start + HEADER_BYTES]);
        let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| "bad nonce length")?;
        let mut body = out.split_off(body_at);
        key.seal_in_place_append_tag(nonce, Aad::from(&aad[..]), &mut body)
            .map_err(|_| "AES-GCM seal failed")?;
        out.extend_from_slice(&body);
        set_length_and_crc(&mut out[start..]);
        Ok(())
    }

    fn open(&self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(&open_all(Some(&self.keyring), sealed)?);
        Ok(())
    }
}

/// Opens every sealed batch of `bytes` (whole batches as the log returns them) and copies
/// the others: what a client may be sent.
pub fn open_all(keyring: Option<&Keyring>, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < HEADER_BYTES {
            return Err("a batch is cut short".into());
        }
        let len = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let size = usize::try_from(len).map_err(|_| "negative batch length")? + at::PARTITION_LEADER_EPOCH;
        if size < HEADER_BYTES {
            return Err(format!("batch length {len} is shorter than a batch header"));
        }
        let batch = rest.get(..size).ok_or("a batch is cut short")?;
        if attributes(batch) & attr::SEALED == 0 {
            out.extend_from_slice(batch);
        } else {
            open_one(keyring.ok_or("a sealed batch, but no encryption keys are loaded")?, batch, &mut out)?;
        }
        pos += size;
    }
    Ok(out)
}

fn open_one(keyring: &Keyring, batch: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let id_len = *batch.get(HEADER_BYTES).ok_or("sealed batch without a key id")? as usize;
    let id_at = HEADER_BYTES + 1;
    let nonce_at = id_at + id_len;
    let body_at = nonce_at + NONCE_LEN;
    if batch.len() < body_at + TAG_BYTES {
        return Err("sealed batch too short".into());
    }
    let id = std::str::from_utf8(&batch[id_at..nonce_at]).map_err(|_| "key id is not UTF-8")?;
    let key = keyring.key(id)?;
    let nonce = Nonce::try_assume_unique_for_key(&batch[nonce_at..body_at]).map_err(|_| "bad nonce")?;
    let aad = aad(&batch[..HEADER_BYTES]);
    let mut body = batch[body_at..].to_vec();
    let plain = key.open_in_place(nonce, Aad::from(&aad[..]), &mut body).map_err(|_| {
        format!(
            "batch at offset {} does not open with key {id:?} (wrong key or altered bytes)",
            base_offset(batch)
        )
    })?;
    let start = out.len();
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    out.extend_from_slice(plain);
    let attrs = attributes(batch) & !attr::SEALED;
    out[start + at::ATTRIBUTES..start + at::ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    set_length_and_crc(&mut out[start..]);
    Ok(())
}

fn base_offset(batch: &[u8]) -> i64 {
    i64::from_be_bytes(batch[..8].try_into().unwrap_or([0; 8]))
}

/// A fixed one-key keyring (id "k") for the fuzz target.
#[cfg(feature = "fuzzing")]
pub fn fuzz_keyring() -> Keyring {
    let key = parse_key("k", &"42".repeat(32), "fuzz").expect("a valid fixed key");
    Keyring { keys: HashMap::from([("k".to_string(), key)]), current: "k".into() }
}

/// At start-up: the first batch of every segment of a partition directory that is sealed
/// must open with the keys loaded, so a wrong or missing key stops the broker instead of
/// serving garbage later.
pub fn check_partition_dir(keyring: Option<&Keyring>, dir: &Path) -> Result<usize, String> {
    use std::io::Read;
    let mut checked = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut header = [0u8; HEADER_BYTES];
        if file.read_exact(&mut header).is_err() || attributes(&header) & attr::SEALED == 0 {
            continue;
        }
        let len = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let size = usize::try_from(len).unwrap_or(0) + at::PARTITION_LEADER_EPOCH;
        if !(HEADER_BYTES..=(1 << 30)).contains(&size) {
            return Err(format!("{}: first batch has length {len}", path.display()));
        }
        let mut batch = header.to_vec();
        batch.resize(size, 0);
        file.read_exact(&mut batch[HEADER_BYTES..]).map_err(|e| format!("{}: {e}", path.display()))?;
        open_all(keyring, &batch).map_err(|e| format!("{}: {e}", path.display()))?;
        checked += 1;
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use riptide_engine::BatchSealer;

    fn keyring(pairs: &[(&str, u8)], current: &str) -> Arc<Keyring> {
        let keys = pairs
            .iter()
            .map(|(id, b)| (id.to_string(), parse_key(id, &format!("{b:02x}").repeat(32), "t").expect("key")))
            .collect();
        Arc::new(Keyring { keys, current: current.into() })
    }

    /// A minimal valid batch: header with the given records bytes.
    fn batch(records: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES];
        b[..8].copy_from_slice(&42i64.to_be_bytes());
        b[at::MAGIC] = 2;
        b.extend_from_slice(records);
        set_length_and_crc(&mut b);
        b
    }

    #[test]
    fn sealing_hides_the_records_and_opening_restores_the_batch() {
        let ring = keyring(&[("k1", 1), ("k2", 2)], "k1");
        let plain = batch(b"the secret payload, twice: the secret payload");
        let mut sealed = Vec::new();
        TopicSealer::new(ring.clone(), None).expect("sealer").seal(&plain, &mut sealed).expect("seal");
        assert!(!sealed.windows(10).any(|w| w == b"the secret"), "no plaintext on disk");
        assert!(
            riptide_engine::batch::check_stored(&sealed).is_ok(),
            "CRC and length describe the sealed bytes"
        );
        assert_eq!(open_all(Some(&ring), &sealed).expect("open"), plain);
        // Rotation: a batch sealed with k2 next to one sealed with k1; both open.
        let mut both = sealed.clone();
        TopicSealer::new(ring.clone(), Some("k2")).expect("k2").seal(&plain, &mut both).expect("seal");
        assert_eq!(open_all(Some(&ring), &both).expect("open"), [plain.clone(), plain.clone()].concat());
        // A keyring without k1, or with another key under that id, refuses to open it.
        let other = keyring(&[("k1", 9)], "k1");
        assert!(open_all(Some(&other), &sealed).is_err());
        assert!(open_all(Some(&keyring(&[("k2", 2)], "k2")), &sealed).is_err());
        assert!(open_all(None, &sealed).is_err());
        // An altered header (another base offset) is detected.
        let mut moved = sealed.clone();
        moved[7] ^= 1;
        assert!(open_all(Some(&ring), &moved).is_err());
        // Clear batches pass through.
        assert_eq!(open_all(None, &plain).expect("clear"), plain);
    }

    #[test]
    fn keys_load_from_the_file_and_the_environment_rules() {
        let dir = std::env::temp_dir().join(format!("riptide-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("keys");
        std::fs::write(&file, format!("# keys\nold={}\nnew={}\n", "11".repeat(32), "22".repeat(32)))
            .expect("write");
        let config = SecurityConfig { encryption_key_file: Some(file.clone()), ..Default::default() };
        let ring = Keyring::load(&config).expect("load").expect("some");
        assert_eq!(ring.current, "new");
        assert!(ring.has("old"));
        let pinned = SecurityConfig { encryption_key_id: Some("old".into()), ..config.clone() };
        assert_eq!(Keyring::load(&pinned).expect("load").expect("some").current, "old");
        let unknown = SecurityConfig { encryption_key_id: Some("nope".into()), ..config };
        assert!(Keyring::load(&unknown).is_err());
        std::fs::write(&file, "k=abcd\n").expect("write");
        let short = SecurityConfig { encryption_key_file: Some(file), ..Default::default() };
        assert!(Keyring::load(&short).expect_err("short key").contains("64 hex"));
        std::fs::remove_dir_all(dir).ok();
    }
}
