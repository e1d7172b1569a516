//! A [`Stream`] that remembers the timeouts last set on it: [`flush`](super::flush) sets
//! the write timeout before every write and [`wait`](super::wait) the read timeout before
//! every read, mostly to the value already there (`None` for a worker's writes and a call
//! without a timeout, the poll interval for an idle worker's reads), and each set is a
//! system call (`setsockopt`).

use super::Stream;
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::time::Duration;

/// A timeout as last set on the stream (`None`: not known, e.g. before the first set or
/// after one failed).
type Kept = Cell<Option<Option<Duration>>>;

/// A stream whose timeouts are set only when they change.
pub(super) struct KeptTimeouts {
    inner: Box<dyn Stream>,
    read: Kept,
    write: Kept,
}

impl KeptTimeouts {
    pub(super) fn new(inner: Box<dyn Stream>) -> Self {
        let (read, write) = (Cell::new(None), Cell::new(None));
        KeptTimeouts { inner, read, write }
    }
}

/// Sets `timeout` with `set` unless `kept` says it already is.
fn set_once(
    kept: &Kept,
    timeout: Option<Duration>,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> io::Result<()> {
    if kept.get() == Some(timeout) {
        return Ok(());
    }
    kept.set(None);
    set(timeout)?;
    kept.set(Some(timeout));
    Ok(())
}

impl Read for KeptTimeouts {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for KeptTimeouts {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Stream for KeptTimeouts {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_once(&self.read, timeout, |t| self.inner.set_read_timeout(t))
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_once(&self.write, timeout, |t| self.inner.set_write_timeout(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Each timeout set: which one (read or write) and to what.
    type Sets = Arc<Mutex<Vec<(&'static str, Option<Duration>)>>>;

    /// Records the timeouts set on it; refuses a zero one, as std does.
    #[derive(Default)]
    struct Recorder(Sets);

    impl Recorder {
        fn record(&self, which: &'static str, timeout: Option<Duration>) -> io::Result<()> {
            self.0.lock().unwrap().push((which, timeout));
            match timeout {
                Some(t) if t.is_zero() => Err(io::ErrorKind::InvalidInput.into()),
                _ => Ok(()),
            }
        }
    }

    impl Read for Recorder {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Stream for Recorder {
        fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.record("read", timeout)
        }

        fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.record("write", timeout)
        }
    }

    #[test]
    fn sets_a_timeout_only_when_it_changes() {
        let recorder = Recorder::default();
        let seen = Arc::clone(&recorder.0);
        let stream = KeptTimeouts::new(Box::new(recorder));
        let (second, zero) = (Some(Duration::from_secs(1)), Some(Duration::ZERO));
        for timeout in [None, None, second, second, None] {
            stream.set_write_timeout(timeout).unwrap();
        }
        for timeout in [second, second] {
            stream.set_read_timeout(timeout).unwrap();
        }
        // A set that failed leaves the timeout unknown: the next one is tried again.
        assert!(stream.set_write_timeout(zero).is_err());
        assert!(stream.set_write_timeout(zero).is_err());
        stream.set_write_timeout(None).unwrap();
        let seen = seen.lock().unwrap().clone();
        let expected = [
            ("write", None),
            ("write", second),
            ("write", None),
            ("read", second),
            ("write", zero),
            ("write", zero),
            ("write", None),
        ];
        assert_eq!(seen, expected);
    }
}
