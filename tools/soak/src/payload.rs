//! Job payloads: `ID|SLEEP_MS|PADDING`. The worker sleeps SLEEP_MS (so kills land
//! mid-job) and echoes the whole payload, so a foreground result proves it came from this
//! call's job; background runs are reported by ID.

use bytes::Bytes;

/// Foreground function: sleeps, echoes.
pub const FG: &str = "soak_fg";
/// Background function: reports start and end of each run, sleeps, echoes.
pub const BG: &str = "soak_bg";
/// The probe's function, served by a worker that is never killed.
pub const PROBE: &str = "soak_probe";
/// Prefix of every soak function (for `status`).
pub const PREFIX: &str = "soak_";

/// A payload for `id`: mostly fast and small, sometimes slow (up to 150 ms) or large (64 KiB).
pub fn make(id: u64, rng: &mut fastrand::Rng) -> Bytes {
    let sleep_ms = if rng.u8(..100) < 15 {
        rng.u64(5..150)
    } else {
        0
    };
    let pad = if rng.u8(..100) < 2 {
        64 * 1024
    } else {
        rng.usize(0..512)
    };
    let mut out = format!("{id}|{sleep_ms}|").into_bytes();
    out.extend((0..pad).map(|i| b'a' + (i % 26) as u8));
    out.into()
}

/// (id, sleep ms) of a payload, if it is one of ours.
pub fn parse(data: &[u8]) -> Option<(u64, u64)> {
    let mut parts = data.splitn(3, |&b| b == b'|');
    let id = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let sleep = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    Some((id, sleep))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let mut rng = fastrand::Rng::with_seed(7);
        for id in [0, 1, u64::MAX] {
            let p = super::make(id, &mut rng);
            assert_eq!(super::parse(&p).map(|(i, _)| i), Some(id));
        }
        assert_eq!(super::parse(b"garbage"), None);
    }
}
