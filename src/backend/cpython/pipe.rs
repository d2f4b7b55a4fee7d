//! Reading and writing a worker's pipes with a deadline. Our ends are
//! non-blocking and we wait with poll(2), so a hung worker costs at most the
//! per-file timeout and never a thread.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub(super) enum PipeError {
    /// EOF on read or EPIPE on write: the worker is gone.
    #[error("the worker closed its end of the pipe")]
    Closed,
    #[error("the deadline passed")]
    TimedOut,
    #[error(transparent)]
    Io(io::Error),
}

/// Only our end is changed: the child's end of a pipe is a separate open file
/// description, so the worker keeps blocking I/O.
pub(super) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we borrow; no memory is passed.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes every byte of `bufs`, in order, with as few `writev(2)` calls as
/// the pipe allows (one, when it has room for them all).
pub(super) fn write_all_vectored<W: Write + AsFd>(
    pipe: &mut W,
    mut bufs: &mut [IoSlice<'_>],
    deadline: Option<Instant>,
) -> Result<(), PipeError> {
    IoSlice::advance_slices(&mut bufs, 0); // skips leading empty slices
    while !bufs.is_empty() {
        match pipe.write_vectored(bufs) {
            Ok(0) => return Err(PipeError::Closed),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(err) => match err.kind() {
                ErrorKind::WouldBlock => wait_for(pipe.as_fd(), libc::POLLOUT, deadline)?,
                ErrorKind::Interrupted => {}
                ErrorKind::BrokenPipe => return Err(PipeError::Closed),
                _ => return Err(PipeError::Io(err)),
            },
        }
    }
    Ok(())
}

/// Waits until the pipe is readable, then reads into `buf` until at least
/// `min` bytes came, and returns how many did (up to `buf.len()`: whatever
/// the pipe held). Waiting first saves the read that would find nothing:
/// an answer is rarely there the moment its request was written.
pub(super) fn read_at_least<R: Read + AsFd>(
    pipe: &mut R,
    buf: &mut [u8],
    min: usize,
    deadline: Option<Instant>,
) -> Result<usize, PipeError> {
    wait_for(pipe.as_fd(), libc::POLLIN, deadline)?;
    fill(pipe, buf, min, deadline)
}

pub(super) fn read_exact<R: Read + AsFd>(
    pipe: &mut R,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<(), PipeError> {
    fill(pipe, buf, buf.len(), deadline).map(drop)
}

/// Reads into `buf` until at least `min` bytes came, waiting whenever the
/// pipe is empty; returns how many did.
fn fill<R: Read + AsFd>(
    pipe: &mut R,
    buf: &mut [u8],
    min: usize,
    deadline: Option<Instant>,
) -> Result<usize, PipeError> {
    let mut got = 0;
    while got < min {
        match pipe.read(&mut buf[got..]) {
            Ok(0) => return Err(PipeError::Closed),
            Ok(n) => got += n,
            Err(err) => match err.kind() {
                ErrorKind::WouldBlock => wait_for(pipe.as_fd(), libc::POLLIN, deadline)?,
                ErrorKind::Interrupted => {}
                _ => return Err(PipeError::Io(err)),
            },
        }
    }
    Ok(got)
}

/// Waits until `fd` is ready for `events` (or hung up, which the next read or
/// write reports), or the deadline passes.
fn wait_for(fd: BorrowedFd<'_>, events: libc::c_short, deadline: Option<Instant>) -> Result<(), PipeError> {
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(PipeError::TimedOut);
                }
                // Round up so that we never spin on a sub-millisecond remainder.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        let mut pollfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let ready = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
        match ready {
            n if n > 0 => return Ok(()),
            0 => {} // timed out: the loop re-checks the deadline
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != ErrorKind::Interrupted {
                    return Err(PipeError::Io(err));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    #[test]
    fn read_times_out_then_sees_eof() {
        let mut child = Command::new("sleep")
            .arg("0.3")
            .stdout(Stdio::piped())
            .spawn()
            .expect("sleep(1) exists");
        let mut out = child.stdout.take().unwrap();
        set_nonblocking(out.as_fd()).unwrap();
        let mut buf = [0u8; 4];
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(matches!(
            read_exact(&mut out, &mut buf, Some(soon)),
            Err(PipeError::TimedOut)
        ));
        assert!(matches!(read_exact(&mut out, &mut buf, None), Err(PipeError::Closed)));
        child.wait().unwrap();
    }

    #[test]
    fn write_to_exited_reader_is_closed() {
        let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        set_nonblocking(input.as_fd()).unwrap();
        child.wait().unwrap();
        // More than a pipe buffer, so the write cannot succeed by buffering.
        let big = vec![0u8; 1 << 20];
        let mut bufs = [IoSlice::new(b"head"), IoSlice::new(&big)];
        assert!(matches!(
            write_all_vectored(&mut input, &mut bufs, None),
            Err(PipeError::Closed)
        ));
    }

    #[test]
    fn vectored_writes_arrive_whole_and_in_order_past_the_pipe_capacity() {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cat(1) exists");
        let mut input = child.stdin.take().unwrap();
        set_nonblocking(input.as_fd()).unwrap();
        // Three pipe capacities and an empty slice: partial writev(2)s that
        // end inside a slice, and one that ends on a slice's boundary.
        let big: Vec<u8> = (0..3 * 65_536 + 7).map(|i| (i % 251) as u8).collect();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            child.stdout.take().unwrap().read_to_end(&mut all).unwrap();
            child.wait().unwrap();
            all
        });
        let mut bufs = [
            IoSlice::new(b""),
            IoSlice::new(b"head:"),
            IoSlice::new(&big),
            IoSlice::new(b":tail"),
        ];
        write_all_vectored(&mut input, &mut bufs, Some(Instant::now() + Duration::from_secs(10))).unwrap();
        drop(input);
        let all = reader.join().unwrap();
        assert_eq!(&all[..5], b"head:");
        assert_eq!(&all[5..5 + big.len()], &big[..]);
        assert_eq!(&all[5 + big.len()..], b":tail");
    }

    #[test]
    fn read_at_least_takes_what_the_pipe_holds_and_waits_for_the_minimum() {
        // printf writes its output in one write(2): all 12 bytes are there
        // at once, so one read returns more than the minimum.
        let mut child = Command::new("printf")
            .arg("0123456789ab")
            .stdout(Stdio::piped())
            .spawn()
            .expect("printf(1) exists");
        let mut out = child.stdout.take().unwrap();
        set_nonblocking(out.as_fd()).unwrap();
        let mut buf = [0u8; 64];
        let got = read_at_least(&mut out, &mut buf, 4, None).unwrap();
        assert_eq!(&buf[..got], b"0123456789ab");
        child.wait().unwrap();
        // Nothing more will come: the minimum is never reached.
        assert!(matches!(
            read_at_least(&mut out, &mut buf, 1, None),
            Err(PipeError::Closed)
        ));
    }
}
