//! The `membership` header and its control messages.
//!
//! Every message through the layer carries a one-byte [`MbrHdr`]: `Data` (0x00,
//! pass-through: a message of the layers above) or `Ctl` (0x01: a control message of
//! this layer, whose body is a [`Ctl`]). Control messages travel in the body so the
//! headroom of every message stays one byte however large a member list is.
//!
//! `Ctl` encoding: a tag byte, then fields; integers are LEB128 varints, a member is
//! its 8-byte big-endian id, a list is a varint count then its items, an optional
//! value is a 0/1 byte then the value.
//!
//! ```text
//! 0 Discover
//! 1 Here        view coord founder size
//! 2 JoinReq
//! 3 LeaveReq    view
//! 4 Prepare     ballot view [members] [survivors] [joiners] [leavers]
//! 5 Report      ballot view [delivered] [progress] accepted?(ballot proposal)
//! 6 Propose     ballot proposal
//! 7 Ack         ballot view
//! 8 Install     view reason [members] founder
//! 9 Probe       view
//! 10 Excluded   view
//! ballot   = n:varint by:member
//! proposal = view reason [members] [cut] [nak_cut]     (cut entries: member n)
//! reason   = 0 initial, 1 join, 2 leave, 3 failure, 4 merge
//! ```

use stack_core::wire::{varint_len, Header, Reader, WireError, Writer};
use stack_core::{MemberId, ViewReason};

/// Longest member list or vector a control message may carry.
pub const MAX_LIST: usize = 4096;

/// The one-byte header of every message through the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MbrHdr {
    /// Pass-through: a message of the layers above.
    Data,
    /// A control message of this layer (body: [`Ctl`]).
    Ctl,
}

impl Header for MbrHdr {
    const MAX_LEN: usize = 1;
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode(&self, out: &mut [u8]) {
        out[0] = match self {
            MbrHdr::Data => 0,
            MbrHdr::Ctl => 1,
        }
    }
    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        match Reader::new(buf).u8()? {
            0 => Ok((MbrHdr::Data, 1)),
            1 => Ok((MbrHdr::Ctl, 1)),
            t => Err(WireError::BadTag(t)),
        }
    }
}

/// A round of the view agreement: ordered by number, then by proposer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Ballot {
    pub n: u64,
    pub by: MemberId,
}

/// A proposed next view with its flush cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub view: u64,
    pub reason: ViewReason,
    pub members: Vec<MemberId>,
    /// Per sender, how many casts of the layers above every survivor delivers in the
    /// old view (this layer's own count).
    pub cut: Vec<(MemberId, u64)>,
    /// The same cut in the reliable layer's sequence numbers (max of survivors'
    /// `Progress`), for it to fetch missing messages from any holder.
    pub nak_cut: Vec<(MemberId, u64)>,
}

/// A control message of the membership layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ctl {
    /// Cast (unsequenced) by a process without a view looking for the group.
    Discover,
    /// Answer to `Discover`: the group exists, in `view` of `size` members,
    /// coordinated by `coord`, in the lineage founded by `founder`. Also cast
    /// unreliably every `merge_ms` by the acting coordinator of a primary view as the
    /// merge beacon, heard by groups founded separately.
    Here { view: u64, coord: MemberId, founder: MemberId, size: u64 },
    /// Asks the coordinator to be added.
    JoinReq,
    /// Asks the coordinator to be removed from the view after `view`.
    LeaveReq { view: u64 },
    /// Opens a round: stop sending in `view`, report what you delivered.
    Prepare {
        ballot: Ballot,
        view: u64,
        members: Vec<MemberId>,
        survivors: Vec<MemberId>,
        joiners: Vec<MemberId>,
        leavers: Vec<MemberId>,
    },
    /// A survivor's answer to `Prepare`.
    Report {
        ballot: Ballot,
        view: u64,
        delivered: Vec<(MemberId, u64)>,
        progress: Vec<(MemberId, u64)>,
        accepted: Option<(Ballot, Proposal)>,
    },
    /// The next view and the cut to reach before it.
    Propose { ballot: Ballot, proposal: Proposal },
    /// The cut is reached; the proposal is accepted.
    Ack { ballot: Ballot, view: u64 },
    /// The decided view, of the lineage founded by `founder`.
    Install { view: u64, reason: ViewReason, members: Vec<MemberId>, founder: MemberId },
    /// Sent by a blocked member to learn whether the group went on without it.
    Probe { view: u64 },
    /// The group is in `view` and the addressee is not in it.
    Excluded { view: u64 },
}

fn reason_code(r: ViewReason) -> u8 {
    match r {
        ViewReason::Initial => 0,
        ViewReason::Join => 1,
        ViewReason::Leave => 2,
        ViewReason::Failure => 3,
        ViewReason::Merge => 4,
    }
}

fn reason_from(c: u8) -> Result<ViewReason, WireError> {
    Ok(match c {
        0 => ViewReason::Initial,
        1 => ViewReason::Join,
        2 => ViewReason::Leave,
        3 => ViewReason::Failure,
        4 => ViewReason::Merge,
        _ => return Err(WireError::Invalid("view reason")),
    })
}

fn list_len(l: &[MemberId]) -> usize {
    varint_len(l.len() as u64) + 8 * l.len()
}

fn vec_len(l: &[(MemberId, u64)]) -> usize {
    varint_len(l.len() as u64) + l.iter().map(|e| 8 + varint_len(e.1)).sum::<usize>()
}

fn ballot_len(b: &Ballot) -> usize {
    varint_len(b.n) + 8
}

fn proposal_len(p: &Proposal) -> usize {
    varint_len(p.view) + 1 + list_len(&p.members) + vec_len(&p.cut) + vec_len(&p.nak_cut)
}

fn put_list(w: &mut Writer, l: &[MemberId]) {
    w.varint(l.len() as u64);
    for m in l {
        w.u64(m.0);
    }
}

fn put_vec(w: &mut Writer, l: &[(MemberId, u64)]) {
    w.varint(l.len() as u64);
    for (m, n) in l {
        w.u64(m.0);
        w.varint(*n);
    }
}

fn put_ballot(w: &mut Writer, b: &Ballot) {
    w.varint(b.n);
    w.u64(b.by.0);
}

fn put_proposal(w: &mut Writer, p: &Proposal) {
    w.varint(p.view);
    w.u8(reason_code(p.reason));
    put_list(w, &p.members);
    put_vec(w, &p.cut);
    put_vec(w, &p.nak_cut);
}

fn get_list(r: &mut Reader) -> Result<Vec<MemberId>, WireError> {
    let n = r.len(MAX_LIST)?;
    if r.remaining() < n * 8 {
        return Err(WireError::Truncated);
    }
    (0..n).map(|_| r.u64().map(MemberId)).collect()
}

fn get_vec(r: &mut Reader) -> Result<Vec<(MemberId, u64)>, WireError> {
    let n = r.len(MAX_LIST)?;
    if r.remaining() < n * 9 {
        return Err(WireError::Truncated);
    }
    (0..n).map(|_| Ok((MemberId(r.u64()?), r.varint()?))).collect()
}

fn get_ballot(r: &mut Reader) -> Result<Ballot, WireError> {
    Ok(Ballot { n: r.varint()?, by: MemberId(r.u64()?) })
}

fn get_proposal(r: &mut Reader) -> Result<Proposal, WireError> {
    Ok(Proposal {
        view: r.varint()?,
        reason: reason_from(r.u8()?)?,
        members: get_list(r)?,
        cut: get_vec(r)?,
        nak_cut: get_vec(r)?,
    })
}

impl Ctl {
    /// Exact length of the encoding.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Ctl::Discover | Ctl::JoinReq => 0,
            Ctl::Here { view, size, .. } => varint_len(*view) + 16 + varint_len(*size),
            Ctl::LeaveReq { view } | Ctl::Probe { view } | Ctl::Excluded { view } => {
                varint_len(*view)
            }
            Ctl::Prepare { ballot, view, members, survivors, joiners, leavers } => {
                ballot_len(ballot)
                    + varint_len(*view)
                    + list_len(members)
                    + list_len(survivors)
                    + list_len(joiners)
                    + list_len(leavers)
            }
            Ctl::Report { ballot, view, delivered, progress, accepted } => {
                ballot_len(ballot)
                    + varint_len(*view)
                    + vec_len(delivered)
                    + vec_len(progress)
                    + 1
                    + accepted.as_ref().map_or(0, |(b, p)| ballot_len(b) + proposal_len(p))
            }
            Ctl::Propose { ballot, proposal } => ballot_len(ballot) + proposal_len(proposal),
            Ctl::Ack { ballot, view } => ballot_len(ballot) + varint_len(*view),
            Ctl::Install { view, members, .. } => varint_len(*view) + 1 + list_len(members) + 8,
        }
    }

    /// The encoding as a new buffer (control traffic is rare: one allocation each).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.encoded_len()];
        let mut w = Writer::new(&mut out);
        match self {
            Ctl::Discover => w.u8(0),
            Ctl::Here { view, coord, founder, size } => {
                w.u8(1);
                w.varint(*view);
                w.u64(coord.0);
                w.u64(founder.0);
                w.varint(*size);
            }
            Ctl::JoinReq => w.u8(2),
            Ctl::LeaveReq { view } => {
                w.u8(3);
                w.varint(*view);
            }
            Ctl::Prepare { ballot, view, members, survivors, joiners, leavers } => {
                w.u8(4);
                put_ballot(&mut w, ballot);
                w.varint(*view);
                put_list(&mut w, members);
                put_list(&mut w, survivors);
                put_list(&mut w, joiners);
                put_list(&mut w, leavers);
            }
            Ctl::Report { ballot, view, delivered, progress, accepted } => {
                w.u8(5);
                put_ballot(&mut w, ballot);
                w.varint(*view);
                put_vec(&mut w, delivered);
                put_vec(&mut w, progress);
                match accepted {
                    None => w.u8(0),
                    Some((b, p)) => {
                        w.u8(1);
                        put_ballot(&mut w, b);
                        put_proposal(&mut w, p);
                    }
                }
            }
            Ctl::Propose { ballot, proposal } => {
                w.u8(6);
                put_ballot(&mut w, ballot);
                put_proposal(&mut w, proposal);
            }
            Ctl::Ack { ballot, view } => {
                w.u8(7);
                put_ballot(&mut w, ballot);
                w.varint(*view);
            }
            Ctl::Install { view, reason, members, founder } => {
                w.u8(8);
                w.varint(*view);
                w.u8(reason_code(*reason));
                put_list(&mut w, members);
                w.u64(founder.0);
            }
            Ctl::Probe { view } => {
                w.u8(9);
                w.varint(*view);
            }
            Ctl::Excluded { view } => {
                w.u8(10);
                w.varint(*view);
            }
        }
        debug_assert_eq!(w.position(), out.len());
        out
    }

    /// Parses a whole control message; trailing bytes are an error.
    pub fn decode(buf: &[u8]) -> Result<Ctl, WireError> {
        let mut r = Reader::new(buf);
        let c = match r.u8()? {
            0 => Ctl::Discover,
            1 => Ctl::Here {
                view: r.varint()?,
                coord: MemberId(r.u64()?),
                founder: MemberId(r.u64()?),
                size: r.varint()?,
            },
            2 => Ctl::JoinReq,
            3 => Ctl::LeaveReq { view: r.varint()? },
            4 => Ctl::Prepare {
                ballot: get_ballot(&mut r)?,
                view: r.varint()?,
                members: get_list(&mut r)?,
                survivors: get_list(&mut r)?,
                joiners: get_list(&mut r)?,
                leavers: get_list(&mut r)?,
            },
            5 => Ctl::Report {
                ballot: get_ballot(&mut r)?,
                view: r.varint()?,
                delivered: get_vec(&mut r)?,
                progress: get_vec(&mut r)?,
                accepted: match r.u8()? {
                    0 => None,
                    1 => Some((get_ballot(&mut r)?, get_proposal(&mut r)?)),
                    _ => return Err(WireError::Invalid("option flag")),
                },
            },
            6 => Ctl::Propose { ballot: get_ballot(&mut r)?, proposal: get_proposal(&mut r)? },
            7 => Ctl::Ack { ballot: get_ballot(&mut r)?, view: r.varint()? },
            8 => Ctl::Install {
                view: r.varint()?,
                reason: reason_from(r.u8()?)?,
                members: get_list(&mut r)?,
                founder: MemberId(r.u64()?),
            },
            9 => Ctl::Probe { view: r.varint()? },
            10 => Ctl::Excluded { view: r.varint()? },
            t => return Err(WireError::BadTag(t)),
        };
        if r.remaining() != 0 {
            return Err(WireError::Invalid("trailing bytes"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MemberId = MemberId::new(1, 0);
    const B: MemberId = MemberId::new(2, 3);

    fn samples() -> Vec<Ctl> {
        let b = Ballot { n: 300, by: A };
        let p = Proposal {
            view: 7,
            reason: ViewReason::Failure,
            members: vec![A, B],
            cut: vec![(A, 1), (B, 200)],
            nak_cut: vec![(A, 5)],
        };
        vec![
            Ctl::Discover,
            Ctl::Here { view: 2, coord: B, founder: A, size: 300 },
            Ctl::JoinReq,
            Ctl::LeaveReq { view: 9 },
            Ctl::Prepare {
                ballot: b,
                view: 6,
                members: vec![A, B],
                survivors: vec![A],
                joiners: vec![B],
                leavers: vec![],
            },
            Ctl::Report {
                ballot: b,
                view: 6,
                delivered: vec![(A, 3)],
                progress: vec![(A, 4), (B, 0)],
                accepted: Some((b, p.clone())),
            },
            Ctl::Report { ballot: b, view: 6, delivered: vec![], progress: vec![], accepted: None },
            Ctl::Propose { ballot: b, proposal: p },
            Ctl::Ack { ballot: b, view: 7 },
            Ctl::Install { view: 7, reason: ViewReason::Join, members: vec![B, A], founder: A },
            Ctl::Probe { view: 1 },
            Ctl::Excluded { view: 128 },
        ]
    }

    #[test]
    fn header_fixed_bytes() {
        let mut b = [0u8; 1];
        MbrHdr::Ctl.encode(&mut b);
        assert_eq!(b, [1]);
        assert_eq!(MbrHdr::decode(&[0, 9]), Ok((MbrHdr::Data, 1)));
        assert_eq!(MbrHdr::decode(&[]), Err(WireError::Truncated));
        assert_eq!(MbrHdr::decode(&[2]), Err(WireError::BadTag(2)));
    }

    #[test]
    fn ctl_fixed_bytes() {
        assert_eq!(Ctl::Discover.to_vec(), [0]);
        assert_eq!(
            Ctl::Here { view: 2, coord: B, founder: A, size: 300 }.to_vec(),
            [1, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0xac, 0x02]
        );
        assert_eq!(Ctl::Excluded { view: 128 }.to_vec(), [10, 0x80, 0x01]);
        assert_eq!(
            Ctl::Ack { ballot: Ballot { n: 1, by: A }, view: 7 }.to_vec(),
            [7, 1, 0, 0, 0, 1, 0, 0, 0, 0, 7]
        );
        assert_eq!(
            Ctl::Install { view: 3, reason: ViewReason::Leave, members: vec![A], founder: B }
                .to_vec(),
            [8, 3, 2, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3]
        );
    }

    #[test]
    fn round_trip_and_exact_length() {
        for c in samples() {
            let v = c.to_vec();
            assert_eq!(v.len(), c.encoded_len());
            assert_eq!(Ctl::decode(&v), Ok(c));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for c in samples() {
            let v = c.to_vec();
            for n in 0..v.len() {
                assert!(Ctl::decode(&v[..n]).is_err(), "{c:?} cut at {n}");
            }
        }
    }

    #[test]
    fn corrupted_tags_and_fields_are_errors() {
        assert_eq!(Ctl::decode(&[11]), Err(WireError::BadTag(11)));
        assert_eq!(Ctl::decode(&[0, 0]), Err(WireError::Invalid("trailing bytes")));
        assert_eq!(Ctl::decode(&[8, 3, 9, 0]), Err(WireError::Invalid("view reason")));
        // A list claiming more entries than the limit.
        assert_eq!(
            Ctl::decode(&[8, 3, 1, 0xff, 0xff, 0x03]),
            Err(WireError::Invalid("length too large"))
        );
        // A list claiming more entries than there are bytes.
        assert_eq!(Ctl::decode(&[8, 3, 1, 100]), Err(WireError::Truncated));
        let mut r = samples()[6].to_vec();
        *r.last_mut().unwrap() = 7;
        assert_eq!(Ctl::decode(&r), Err(WireError::Invalid("option flag")));
    }

    quickcheck::quickcheck! {
        fn decode_never_panics(bytes: Vec<u8>) -> bool {
            match Ctl::decode(&bytes) {
                Ok(c) => c.to_vec() == bytes || c.encoded_len() <= bytes.len(),
                Err(_) => true,
            }
        }
        fn decode_after_valid_tag_never_panics(tag: u8, bytes: Vec<u8>) -> bool {
            let mut v = vec![tag % 12];
            v.extend(bytes);
            let _ = Ctl::decode(&v);
            let _ = MbrHdr::decode(&v);
            true
        }
    }
}
