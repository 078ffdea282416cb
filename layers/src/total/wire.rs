//! The `total` header.
//!
//! ```text
//! tag 0  Data                              a cast, to be ordered by the sequencer
//! tag 1  Order    k:v  k × (rank:v count:v) the next casts in the total order: run
//!                                          after run, `count` casts of the member ranked
//!                                          `rank` (in that sender's FIFO order)
//! tag 2  Stamped  ts:v                     a cast with its Lamport timestamp
//! tag 3  Clock    ts:v                     "my Lamport clock has reached ts" (no payload)
//! ```
//!
//! `v` is a LEB128 varint. An `Order` has `1 ≤ k ≤` [`MAX_RUNS`] runs, each with
//! `rank <` [`MAX_MEMBERS`] and `count ≥ 1`.

use smallvec::SmallVec;
use stack_core::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};

/// Largest view the wire format admits.
pub const MAX_MEMBERS: usize = 1024;
/// Most runs one order message carries.
pub const MAX_RUNS: usize = 1024;

/// `(rank, count)` runs of an order message.
pub type Runs = SmallVec<[(u32, u64); 8]>;

const T_DATA: u8 = 0;
const T_ORDER: u8 = 1;
const T_STAMPED: u8 = 2;
const T_CLOCK: u8 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TotalHdr {
    Data,
    Order { runs: Runs },
    Stamped { ts: u64 },
    Clock { ts: u64 },
}

impl TotalHdr {
    /// The largest header pushed on an application cast (`Data`, `Stamped`).
    pub const DATA_MAX_LEN: usize = 1 + VARINT_MAX;
}

impl Header for TotalHdr {
    const MAX_LEN: usize = 1 + 2 + MAX_RUNS * (2 + VARINT_MAX);

    fn encoded_len(&self) -> usize {
        match self {
            TotalHdr::Data => 1,
            TotalHdr::Order { runs } => {
                1 + varint_len(runs.len() as u64)
                    + runs.iter().map(|&(r, c)| varint_len(r as u64) + varint_len(c)).sum::<usize>()
            }
            TotalHdr::Stamped { ts } | TotalHdr::Clock { ts } => 1 + varint_len(*ts),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match self {
            TotalHdr::Data => w.u8(T_DATA),
            TotalHdr::Order { runs } => {
                w.u8(T_ORDER);
                w.varint(runs.len() as u64);
                for &(r, c) in runs {
                    w.varint(r as u64);
                    w.varint(c);
                }
            }
            TotalHdr::Stamped { ts } => {
                w.u8(T_STAMPED);
                w.varint(*ts);
            }
            TotalHdr::Clock { ts } => {
                w.u8(T_CLOCK);
                w.varint(*ts);
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let h = match r.u8()? {
            T_DATA => TotalHdr::Data,
            T_ORDER => {
                let k = r.len(MAX_RUNS)?;
                if k == 0 {
                    return Err(WireError::Invalid("empty order"));
                }
                let mut runs = Runs::with_capacity(k);
                for _ in 0..k {
                    let rank = r.varint()?;
                    if rank >= MAX_MEMBERS as u64 {
                        return Err(WireError::Invalid("rank out of range"));
                    }
                    let count = r.varint()?;
                    if count == 0 {
                        return Err(WireError::Invalid("empty run"));
                    }
                    runs.push((rank as u32, count));
                }
                TotalHdr::Order { runs }
            }
            T_STAMPED => TotalHdr::Stamped { ts: r.varint()? },
            T_CLOCK => TotalHdr::Clock { ts: r.varint()? },
            t => return Err(WireError::BadTag(t)),
        };
        Ok((h, r.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;

    fn enc(h: &TotalHdr) -> Vec<u8> {
        let mut b = vec![0u8; h.encoded_len()];
        h.encode(&mut b);
        b
    }

    #[test]
    fn byte_vectors() {
        let cases: Vec<(TotalHdr, Vec<u8>)> = vec![
            (TotalHdr::Data, vec![0]),
            (
                TotalHdr::Order { runs: smallvec![(0, 3), (2, 200)] },
                vec![1, 2, 0, 3, 2, 0xc8, 0x01],
            ),
            (TotalHdr::Stamped { ts: 300 }, vec![2, 0xac, 0x02]),
            (TotalHdr::Clock { ts: 1 }, vec![3, 1]),
        ];
        for (h, bytes) in cases {
            assert_eq!(enc(&h), bytes, "{h:?}");
            let mut tail = bytes.clone();
            tail.push(0xee);
            assert_eq!(TotalHdr::decode(&tail), Ok((h, bytes.len())));
        }
    }

    #[test]
    fn truncated_and_corrupted() {
        for h in [
            TotalHdr::Order { runs: smallvec![(0, 3), (2, 200)] },
            TotalHdr::Stamped { ts: 300 },
            TotalHdr::Clock { ts: 1 << 40 },
        ] {
            let full = enc(&h);
            for n in 0..full.len() {
                assert_eq!(TotalHdr::decode(&full[..n]), Err(WireError::Truncated), "{h:?} {n}");
            }
        }
        assert_eq!(TotalHdr::decode(&[4]), Err(WireError::BadTag(4)));
        assert_eq!(TotalHdr::decode(&[0xff, 0]), Err(WireError::BadTag(0xff)));
        assert!(matches!(TotalHdr::decode(&[1, 0]), Err(WireError::Invalid(_))));
        assert!(matches!(TotalHdr::decode(&[1, 1, 0, 0]), Err(WireError::Invalid(_))));
        assert!(matches!(TotalHdr::decode(&[1, 1, 0x80, 0x08, 1]), Err(WireError::Invalid(_))));
        assert!(matches!(TotalHdr::decode(&[1, 0x81, 0x08]), Err(WireError::Invalid(_))));
    }

    #[test]
    fn worst_case_fits_max_len() {
        let runs: Runs = (0..MAX_RUNS as u32).map(|r| (r % 1024, u64::MAX)).collect();
        let h = TotalHdr::Order { runs };
        assert!(h.encoded_len() <= TotalHdr::MAX_LEN);
        assert!(TotalHdr::Stamped { ts: u64::MAX }.encoded_len() <= TotalHdr::DATA_MAX_LEN);
    }

    quickcheck::quickcheck! {
        fn never_panics(bytes: Vec<u8>) -> bool {
            match TotalHdr::decode(&bytes) {
                // Varints may be non-canonical on the wire; re-encoding is canonical.
                Ok((h, n)) => {
                    let b = enc(&h);
                    n <= bytes.len() && TotalHdr::decode(&b) == Ok((h, b.len()))
                }
                Err(_) => true,
            }
        }
        fn round_trip(kind: u8, ts: u64, runs: Vec<(u16, u64)>) -> bool {
            let h = match kind % 4 {
                0 => TotalHdr::Data,
                1 if !runs.is_empty() => TotalHdr::Order {
                    runs: runs.iter().map(|&(r, c)| ((r % 1024) as u32, c.max(1))).collect(),
                },
                1 | 2 => TotalHdr::Stamped { ts },
                _ => TotalHdr::Clock { ts },
            };
            let b = enc(&h);
            TotalHdr::decode(&b) == Ok((h, b.len()))
        }
    }
}
