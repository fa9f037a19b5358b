//! Small helpers: the movable clock, Salesforce-style dates and ids, JSON escaping.

use rand::Rng;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The emulator's movable clock (epoch milliseconds).
///
/// It follows real time plus an offset that the control API can change, so tests can age events
/// past their retention window or expire tokens without waiting. Session sweeps and connect holds
/// use real (monotonic) time instead, because they model network behaviour.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// A clock that starts at real time.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// Current time in epoch milliseconds on the movable clock.
    pub fn now_ms(&self) -> u64 {
        let real = real_now_ms() as i64;
        let t = real.saturating_add(self.offset_ms.load(Ordering::Relaxed));
        t.max(0) as u64
    }

    /// Moves the clock forward (or backward with a negative value) by `ms`.
    pub fn advance(&self, ms: i64) -> u64 {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
        self.now_ms()
    }

    /// Sets the clock so that it reads `ms` now.
    pub fn set(&self, ms: u64) -> u64 {
        let real = real_now_ms() as i64;
        self.offset_ms.store(ms as i64 - real, Ordering::Relaxed);
        self.now_ms()
    }
}

/// Real wall-clock time in epoch milliseconds.
pub fn real_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats epoch milliseconds as Salesforce does in `createdDate`: `2016-03-29T16:40:08.208Z`.
pub fn iso_millis(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// Formats epoch milliseconds without fraction, as CDC record dates: `2017-07-25T19:16:44Z`.
pub fn iso_seconds(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Formats an HTTP date (`Expires` cookie attribute): `Thu, 01 Jan 1970 00:00:00 GMT`.
pub fn http_date(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, mo, d, h, mi, s) = civil(secs);
    let days = secs / 86_400;
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo as usize).saturating_sub(1).min(11)];
    format!("{wd}, {d:02} {mon} {y:04} {h:02}:{mi:02}:{s:02} GMT")
}

/// Converts epoch seconds to (year, month, day, hour, minute, second) in UTC.
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days-to-date conversion on the proleptic Gregorian calendar, eras of 400 years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
}

const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random string of `len` characters from `alphabet`.
pub fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A Bayeux clientId as Salesforce issues them: 25–28 lowercase base36 characters.
pub fn new_client_id() -> String {
    let len = rand::thread_rng().gen_range(25..=28);
    random_from(BASE36, len)
}

/// A `BAYEUX_BROWSER` cookie value (CometD style, base36).
pub fn new_browser_id() -> String {
    random_from(BASE36, 16)
}

/// An `sfdc-stream` affinity cookie value. Like the real one it contains `! / + =`, so a client
/// that re-encodes cookie values is caught.
pub fn new_affinity_cookie() -> String {
    format!(
        "!{}/{}+{}==",
        random_from(BASE62, 20),
        random_from(BASE62, 8),
        random_from(BASE62, 6)
    )
}

/// An 18-character Salesforce record id with the given 3-character key prefix (e.g. `001`).
pub fn record_id(prefix: &str) -> String {
    format!("{prefix}xx{}AAA", random_from(BASE62, 10))
}

/// A random RFC 4122 version-4 UUID in lowercase hex.
pub fn uuid4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A stable 22-character schema id for a channel (base64url of a hash), like `dffQ2QLzDNHqwB8_sHMxdA`.
pub fn schema_id(channel: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(channel.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// JSON string literal (with quotes) for `s`.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_501_010_206_653), "2017-07-25T19:16:46.653Z");
        assert_eq!(iso_seconds(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn ids() {
        let c = new_client_id();
        assert!((25..=28).contains(&c.len()));
        assert_eq!(uuid4().len(), 36);
        assert_eq!(schema_id("/event/X__e").len(), 22);
        assert_eq!(record_id("001").len(), 18);
    }
}
