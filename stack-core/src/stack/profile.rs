//! Opt-in per-layer profiling of the driver ([`Stack::set_profiling`]).
//!
//! When on, the driver reads a cheap clock (the time-stamp counter on x86-64,
//! calibrated once against `Instant`; `Instant` elsewhere) around every handler call
//! and keeps,
//! per layer: handler calls, nanoseconds spent in them, and the multicast traffic
//! the layer takes from above and hands below (datagram counts and bytes, headers
//! included). The difference between the bytes a layer hands below and the bytes it
//! takes from above is what it adds to the multicast traffic: its headers, its
//! framing (bundle length prefixes, one header per fragment) and any casts of its own
//! (gossip, heartbeats). When off, the driver checks one `Option` per drain of its
//! queue and nothing else.

use super::Stack;
use crate::event::Down;
use crate::layer::Item;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The profiling clock, in ticks.
#[inline(always)]
fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` has no preconditions; it only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Nanoseconds per tick, measured once per process (5 ms against `Instant`).
fn ns_per_tick() -> f64 {
    static CAL: OnceLock<f64> = OnceLock::new();
    *CAL.get_or_init(|| {
        let (t0, c0) = (Instant::now(), ticks());
        while t0.elapsed() < Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        let (ns, c) = (t0.elapsed().as_nanos() as f64, ticks().wrapping_sub(c0));
        if c == 0 {
            1.0
        } else {
            ns / c as f64
        }
    })
}

/// What one timed handler call costs the profiler itself (two clock reads), in
/// nanoseconds: subtract `events ×` this from a layer's time for its own share.
pub fn clock_cost_ns() -> f64 {
    const N: u64 = 100_000;
    let start = ticks();
    let mut sink = 0u64;
    for _ in 0..N {
        let a = ticks();
        sink = sink.wrapping_add(ticks().wrapping_sub(a));
    }
    std::hint::black_box(sink);
    ticks().wrapping_sub(start) as f64 * ns_per_tick() / N as f64
}

/// What one layer did while profiling was on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerProfile {
    /// Handler calls (down, up, timer).
    pub events: u64,
    /// Nanoseconds spent in those calls.
    pub nanos: u64,
    /// Casts taken from above (the driver counts as above the top layer).
    pub casts_in: u64,
    /// Their length in bytes, headers included.
    pub cast_bytes_in: u64,
    /// Casts handed below (to the transport from the bottom layer), from any handler.
    pub casts_out: u64,
    /// Their length in bytes, headers included.
    pub cast_bytes_out: u64,
}

impl Stack {
    /// Switches per-layer profiling on (counts start from zero) or off.
    pub fn set_profiling(&mut self, on: bool) {
        if on {
            ns_per_tick();
        }
        self.profile =
            on.then(|| vec![LayerProfile::default(); self.layers.len()].into_boxed_slice());
    }

    /// Per layer, bottom to top, what it did since profiling was switched on.
    pub fn profile(&self) -> Option<Vec<(&'static str, LayerProfile)>> {
        let p = self.profile.as_ref()?;
        let k = ns_per_tick();
        let ns = |mut l: LayerProfile| {
            l.nanos = (l.nanos as f64 * k) as u64;
            l
        };
        Some(self.layers.iter().map(|l| l.name()).zip(p.iter().copied().map(ns)).collect())
    }

    /// [`Stack::run`]'s queue drain, timing every handler call.
    pub(super) fn drain_profiled(&mut self) {
        while let Some(item) = self.core.queue.pop() {
            let (i, cast_in) = match &item {
                Item::Down(i, Down::Cast(m)) => (*i as usize, Some(m.len() as u64)),
                Item::Down(i, _) | Item::Up(i, _) | Item::Timer(i, _) => (*i as usize, None),
            };
            let (queued, netted) = (self.core.queue.len(), self.core.net.len());
            let start = ticks();
            match item {
                Item::Down(_, ev) => self.with_ctx(i, |l, c| l.down(ev, c)),
                Item::Up(_, ev) => self.with_ctx(i, |l, c| l.up(ev, c)),
                Item::Timer(_, id) => self.with_ctx(i, |l, c| l.timer(id, c)),
            }
            let nanos = ticks().wrapping_sub(start);
            let (mut n, mut bytes) = (0, 0);
            let below = self.core.queue.iter_from(queued).filter_map(|it| match it {
                Item::Down(_, Down::Cast(m)) => Some(m),
                _ => None,
            });
            let net = self.core.net.iter_from(netted).filter_map(|d| match d {
                Down::Cast(m) => Some(m),
                _ => None,
            });
            for m in below.chain(net) {
                n += 1;
                bytes += m.len() as u64;
            }
            let p = &mut self.profile.as_mut().expect("profiling is on")[i];
            p.events += 1;
            p.nanos += nanos; // ticks until `profile` converts them
            p.casts_out += n;
            p.cast_bytes_out += bytes;
            if let Some(len) = cast_in {
                p.casts_in += 1;
                p.cast_bytes_in += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{Down, Up};
    use crate::layer::{Ctx, Layer};
    use crate::wire::{Header, Reader, WireError, Writer};
    use crate::{AppEvent, Bytes, MemberId, NetOut, Stack, StackConfig, Time};

    struct Tag(u8, u8);
    impl Header for Tag {
        const MAX_LEN: usize = 2;
        fn encoded_len(&self) -> usize {
            2
        }
        fn encode(&self, out: &mut [u8]) {
            let mut w = Writer::new(out);
            w.u8(self.0);
            w.u8(self.1)
        }
        fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
            let mut r = Reader::new(buf);
            let t = Tag(r.u8()?, r.u8()?);
            Ok((t, r.position()))
        }
    }

    /// Pushes a 2-byte header on every cast.
    struct Tagger;
    impl Layer for Tagger {
        fn name(&self) -> &'static str {
            "tagger"
        }
        fn header_max(&self) -> usize {
            2
        }
        fn down(&mut self, ev: Down, ctx: &mut Ctx) {
            match ev {
                Down::Cast(mut m) => {
                    m.push(&Tag(7, 9));
                    ctx.down(Down::Cast(m))
                }
                ev => ctx.down(ev),
            }
        }
        fn up(&mut self, ev: Up, ctx: &mut Ctx) {
            match ev {
                Up::Cast(f, mut m) => {
                    if m.pop::<Tag>().is_ok() {
                        ctx.up(Up::Cast(f, m))
                    }
                }
                ev => ctx.up(ev),
            }
        }
    }

    /// Passes everything on.
    struct Plain;
    impl Layer for Plain {
        fn name(&self) -> &'static str {
            "plain"
        }
    }

    fn looped(profiling: bool, casts: u64) -> Stack {
        let me = MemberId::new(1, 0);
        let layers: Vec<Box<dyn Layer>> = vec![Box::new(Tagger), Box::new(Plain)];
        let mut s = Stack::new(layers, StackConfig { me, seed: 1, members: vec![me] });
        s.set_profiling(profiling);
        s.join(Time::ZERO);
        for _ in 0..casts {
            s.cast(Time::ZERO, Bytes::from_static(&[0; 10])).unwrap();
            while let Some(out) = s.poll_net() {
                if let NetOut::Cast(m) = out {
                    s.receive(Time::ZERO, me, true, m.to_bytes());
                }
            }
        }
        let delivered = std::iter::from_fn(|| s.poll_event())
            .filter(|e| matches!(e, AppEvent::Deliver { .. }))
            .count();
        assert_eq!(delivered as u64, casts, "profiling does not change what is delivered");
        s
    }

    #[test]
    fn profiling_counts_calls_time_and_the_bytes_each_layer_adds() {
        let s = looped(true, 5);
        let p = s.profile().expect("on");
        assert_eq!(p.iter().map(|l| l.0).collect::<Vec<_>>(), ["tagger", "plain"]);
        let (tagger, plain) = (p[0].1, p[1].1);
        // Join's view goes down through both; each cast goes down and up once.
        assert_eq!(plain.events, 1 + 5 + 5);
        assert_eq!(tagger.events, 1 + 5 + 5);
        assert!(tagger.nanos > 0 && plain.nanos > 0);
        assert_eq!((plain.casts_in, plain.casts_out), (5, 5));
        assert_eq!(plain.cast_bytes_out, plain.cast_bytes_in, "a pass-through adds nothing");
        assert_eq!((tagger.casts_in, tagger.casts_out), (5, 5));
        assert_eq!(tagger.cast_bytes_out - tagger.cast_bytes_in, 5 * 2, "2 header bytes each");
    }

    #[test]
    fn profiling_is_off_by_default_and_can_be_switched_off() {
        assert!(looped(false, 1).profile().is_none());
        let mut s = looped(true, 1);
        s.set_profiling(false);
        assert!(s.profile().is_none());
    }
}
