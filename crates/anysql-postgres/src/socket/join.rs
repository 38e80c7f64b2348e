//! Requests joined into one implicit block of the extended protocol (see [`Join`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::{Frames, Shared, State};

/// Requests joined into one implicit block of the extended protocol: the Sync of each but the
/// last is taken out of the stream, so that the server answers them all with one write, at the
/// last Sync, instead of one write each. For each Sync taken out, the connection is handed the
/// ReadyForQuery it would have brought (transaction status `T`: a block is joined only inside a
/// transaction). If one of them fails, the server skips the rest up to the last Sync; each
/// skipped request is then handed the error the server gives a statement in a failed
/// transaction (`25P02`), as it would have had if it had been sent on its own.
#[derive(Debug, Default)]
pub(super) enum Join {
    /// Nothing joined.
    #[default]
    None,
    /// The next `requests` requests the connection writes are to be joined, if they go out in
    /// one write.
    Armed { requests: usize },
    /// Written joined: their replies come after the `after`-th ReadyForQuery, and `left` of them
    /// are still to be answered.
    Open { after: u64, left: usize },
}

/// A ReadyForQuery message with the transaction status `status`.
fn ready_for_query(status: u8) -> [u8; 6] {
    [b'Z', 0, 0, 0, 5, status]
}

/// The ErrorResponse the server sends for a statement in a failed transaction.
fn aborted_error() -> Vec<u8> {
    let mut body = Vec::with_capacity(120);
    for (field, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', "25P02"),
        (
            b'M',
            "current transaction is aborted, commands ignored until end of transaction block",
        ),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A Sync message.
const SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

impl Join {
    /// At the start of a server message of type `kind`: a request's last reply (CommandComplete,
    /// EmptyQueryResponse, ErrorResponse) ends its part of the block, and `due` receives what
    /// the server will not send for it and for the requests it skips.
    pub(super) fn answer(&mut self, kind: u8, shared: &Shared, due: &mut Vec<u8>) {
        let Join::Open { after, left } = self else {
            return;
        };
        if shared.readies_read.load(Ordering::Acquire) < *after {
            return;
        }
        match kind {
            b'C' | b'I' => {
                *left -= 1;
                if *left > 0 {
                    due.extend_from_slice(&ready_for_query(b'T'));
                } else {
                    *self = Join::None;
                }
            }
            b'E' => {
                // The server skips the requests after this one up to the last Sync, and answers
                // that with its ReadyForQuery.
                let skipped = *left - 1;
                *self = Join::None;
                if skipped > 0 {
                    due.extend_from_slice(&ready_for_query(b'E'));
                    for _ in 1..skipped {
                        due.extend(aborted_error());
                        due.extend_from_slice(&ready_for_query(b'E'));
                    }
                    due.extend(aborted_error());
                }
            }
            _ => {}
        }
    }
}

impl Frames {
    /// `bytes`, the next bytes of the client's stream, with the Syncs of the last `requests`
    /// requests but the last taken out, if those requests can be joined into one block: `bytes`
    /// ends with the last one's Sync, every one of them starts in `bytes`, each but the last with
    /// a Bind (the execute of a prepared statement) or a Parse (an unnamed statement), and the
    /// last with a Parse.
    pub(super) fn joined(&self, bytes: &[u8], requests: usize) -> Option<Vec<u8>> {
        let mut starts = Vec::with_capacity(requests + 1);
        let mut syncs = Vec::with_capacity(requests + 1);
        if self.body == 0 && self.have == 0 {
            starts.push(0);
        }
        self.visit(bytes, |at, kind| {
            if kind == b'S' {
                syncs.push(at);
                starts.push(at + SYNC.len());
            }
            true
        });
        // The request that begins after the last Sync is none: `bytes` must end there.
        if starts.pop() != Some(bytes.len()) || syncs.len() < requests || starts.len() < requests {
            return None;
        }
        let run = &syncs[syncs.len() - requests..];
        let firsts = &starts[starts.len() - requests..];
        let (last, others) = firsts.split_last()?;
        if bytes.get(*last) != Some(&b'P')
            || others
                .iter()
                .any(|&at| !matches!(bytes.get(at), Some(b'B' | b'P')))
            || run
                .iter()
                .any(|&at| bytes.get(at..at + SYNC.len()) != Some(&SYNC[..]))
        {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut from = 0;
        for &at in &run[..requests - 1] {
            out.extend_from_slice(&bytes[from..at]);
            from = at + SYNC.len();
        }
        out.extend_from_slice(&bytes[from..]);
        Some(out)
    }
}

impl State {
    /// Writes what is left of a joined write; `Ready(Ok)` once nothing is.
    pub(super) fn write_unwritten(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unwritten.is_empty() {
            match std::task::ready!(Pin::new(&mut self.socket).poll_write(cx, &self.unwritten)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => drop(self.unwritten.drain(..n)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `joined`, which is `buf` with the Syncs of a joined block taken out (see
    /// [`Frames::joined`]), and reports all of `buf` written: what the socket does not take
    /// now goes first next time.
    pub(super) fn write_joined(
        &mut self,
        cx: &mut Context<'_>,
        shared: &Shared,
        buf: &[u8],
        joined: &[u8],
        requests: usize,
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.socket).poll_write(cx, joined) {
            Poll::Pending => {
                self.join = Join::Armed { requests };
                Poll::Pending
            }
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                self.unwritten = joined[n..].to_vec();
                self.requests.observe(buf, shared);
                // Each Sync counts as written: the ones taken out are answered by `Join`.
                let owed = shared.readies_owed.load(Ordering::Acquire);
                self.join = Join::Open {
                    after: owed - requests as u64,
                    left: requests,
                };
                Poll::Ready(Ok(buf.len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::tests::{message, pair, started, RUNTIME};
    use super::super::{lock, PgSocket, Probe, SocketHandle, TxnStatus};
    use super::*;
    use std::io::Write;
    use tokio::io::AsyncReadExt;

    /// Three requests as tokio-postgres writes them: two executes of prepared statements, then
    /// an unnamed statement (`COMMIT`); each ends with its Sync.
    fn three_requests() -> [Vec<u8>; 3] {
        let execute = |statement: &[u8]| {
            let mut bind = vec![0];
            bind.extend_from_slice(statement);
            bind.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
            let mut out = message(b'B', &bind);
            out.extend(message(b'E', b"\0\0\0\0\0"));
            out
        };
        let mut commit = message(b'P', b"\0COMMIT\0\0\0");
        commit.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
        commit.extend(message(b'D', b"P\0"));
        commit.extend(message(b'E', b"\0\0\0\0\0"));
        [execute(b"s1\0"), execute(b"s2\0"), commit]
    }

    /// Reads `len` bytes from `socket` at most `piece` at a time.
    fn read_in_pieces(socket: &mut PgSocket, len: usize, piece: usize) -> Vec<u8> {
        let mut seen = Vec::new();
        while seen.len() < len {
            let mut chunk = vec![0; piece.min(len - seen.len())];
            let n = RUNTIME.block_on(socket.read(&mut chunk)).unwrap();
            assert!(n > 0, "the stream ended");
            seen.extend_from_slice(&chunk[..n]);
        }
        seen
    }

    /// Writes `requests` (each followed by its Sync) in one write, after a Close queued before
    /// them, with `join` requests joined; returns what the server received.
    fn write_joined_requests(
        socket: &mut PgSocket,
        handle: &SocketHandle,
        peer: &mut std::os::unix::net::UnixStream,
        requests: &[Vec<u8>],
        join: usize,
    ) -> Vec<u8> {
        let mut written = message(b'C', b"Ss1\0");
        written.extend(SYNC);
        for request in requests {
            written.extend(request);
            written.extend(SYNC);
        }
        handle.join_next(join);
        RUNTIME
            .block_on(tokio::io::AsyncWriteExt::write_all(socket, &written))
            .unwrap();
        let mut got = vec![0; written.len()];
        peer.set_nonblocking(true).unwrap();
        let n = std::io::Read::read(peer, &mut got).unwrap();
        peer.set_nonblocking(false).unwrap();
        got.truncate(n);
        got
    }

    #[test]
    fn joined_requests_keep_only_the_last_sync_and_get_a_ready_for_query_each() {
        let requests = three_requests();
        for piece in [1, 2, 3, 5, 7, 64, 4096] {
            let (mut socket, handle, mut peer) = pair();
            started(&mut socket, &mut peer);
            let got = write_joined_requests(&mut socket, &handle, &mut peer, &requests, 3);
            // The Close keeps its Sync; of the three joined, only the last does.
            let mut expect = message(b'C', b"Ss1\0");
            expect.extend(SYNC);
            expect.extend(&requests[0]);
            expect.extend(&requests[1]);
            expect.extend(&requests[2]);
            expect.extend(SYNC);
            assert_eq!(got, expect, "pieces of {piece}");
            assert!(!handle.settled());

            // The server answers the Close, then the three in one write, with one
            // ReadyForQuery; the connection sees one after each.
            let mut sent = message(b'3', b"");
            sent.extend(message(b'Z', b"T"));
            let mut seen_expect = sent.clone();
            let first = [message(b'2', b""), message(b'C', b"UPDATE 1\0")].concat();
            let second = [
                message(b'2', b""),
                message(b'N', b"SNOTICE\0\0"),
                message(b'C', b"INSERT 0 1\0"),
            ]
            .concat();
            let commit = [
                message(b'1', b""),
                message(b'2', b""),
                message(b'n', b""),
                message(b'C', b"COMMIT\0"),
            ]
            .concat();
            for part in [&first, &second, &commit] {
                sent.extend(part);
                seen_expect.extend(part);
                if !std::ptr::eq(part, &commit) {
                    seen_expect.extend(message(b'Z', b"T"));
                }
            }
            sent.extend(message(b'Z', b"I"));
            seen_expect.extend(message(b'Z', b"I"));
            peer.write_all(&sent).unwrap();
            if piece % 2 == 1 {
                // Through the read-ahead, as busy-polling reads: the replies handed on first
                // go back in front of what it still holds.
                assert_eq!(handle.probe(), Probe::Ready);
            }
            let seen = read_in_pieces(&mut socket, seen_expect.len(), piece);
            assert_eq!(seen, seen_expect, "pieces of {piece}");
            assert!(handle.settled(), "pieces of {piece}");
            assert_eq!(handle.txn_status(), TxnStatus::Idle);
            // Nothing more: the stream is back to the server's own replies.
            peer.write_all(&message(b'Z', b"T")).unwrap();
            assert_eq!(read_in_pieces(&mut socket, 6, piece), message(b'Z', b"T"));
        }
    }

    #[test]
    fn a_joined_request_that_fails_hands_the_skipped_ones_the_servers_error() {
        let requests = three_requests();
        let failure = message(b'E', b"SERROR\0C23505\0Mduplicate key\0\0");
        let aborted = aborted_error();
        for piece in [1, 3, 7, 4096] {
            let (mut socket, handle, mut peer) = pair();
            started(&mut socket, &mut peer);
            write_joined_requests(&mut socket, &handle, &mut peer, &requests, 3);
            // The first fails: the server skips the other two and answers the last Sync.
            let mut sent = message(b'3', b"");
            sent.extend(message(b'Z', b"T"));
            let mut expect = sent.clone();
            sent.extend(message(b'2', b""));
            sent.extend(&failure);
            sent.extend(message(b'Z', b"E"));
            expect.extend(message(b'2', b""));
            expect.extend(&failure);
            for _ in 0..2 {
                expect.extend(message(b'Z', b"E"));
                expect.extend(&aborted);
            }
            expect.extend(message(b'Z', b"E"));
            peer.write_all(&sent).unwrap();
            let seen = read_in_pieces(&mut socket, expect.len(), piece);
            assert_eq!(seen, expect, "pieces of {piece}");
            assert!(handle.settled());
            assert_eq!(handle.txn_status(), TxnStatus::Failed);
        }
        // The second fails: the first was answered, the third is skipped.
        let (mut socket, handle, mut peer) = pair();
        started(&mut socket, &mut peer);
        write_joined_requests(&mut socket, &handle, &mut peer, &requests, 3);
        let mut sent = message(b'3', b"");
        sent.extend(message(b'Z', b"T"));
        let first = [message(b'2', b""), message(b'C', b"UPDATE 1\0")].concat();
        sent.extend(&first);
        let mut expect = sent.clone();
        expect.extend(message(b'Z', b"T"));
        sent.extend(&failure);
        sent.extend(message(b'Z', b"E"));
        expect.extend(&failure);
        expect.extend(message(b'Z', b"E"));
        expect.extend(&aborted);
        expect.extend(message(b'Z', b"E"));
        peer.write_all(&sent).unwrap();
        assert_eq!(read_in_pieces(&mut socket, expect.len(), 4096), expect);
        assert!(handle.settled());
    }

    #[test]
    fn requests_that_cannot_be_joined_go_out_as_they_are() {
        let [first, second, commit] = three_requests();
        // The last is not an unnamed statement; the join is more than was written; one is not
        // an execute.
        let close = message(b'C', b"Ss3\0");
        for (requests, join) in [
            (vec![first.clone(), second.clone()], 2),
            (vec![first.clone(), commit.clone()], 3),
            (vec![close, commit.clone()], 2),
        ] {
            let (mut socket, handle, mut peer) = pair();
            started(&mut socket, &mut peer);
            let got = write_joined_requests(&mut socket, &handle, &mut peer, &requests, join);
            let mut expect = message(b'C', b"Ss1\0");
            expect.extend(SYNC);
            for request in &requests {
                expect.extend(request);
                expect.extend(SYNC);
            }
            assert_eq!(got, expect);
            // Disarmed: the next write is not joined either.
            assert!(matches!(lock(&handle.shared).join, Join::None));
        }
    }
}
