//! The driver's event queue: a FIFO ring buffer tuned for the one thing the driver
//! does on every layer hop, moving one event in and one event out.
//!
//! Unlike `VecDeque`, an event is moved into its slot with a single copy from the
//! handler's argument (growth, the only call on the way, cannot unwind, so the
//! compiler keeps no other copy of the event for a cleanup path), and the driver moves
//! it out of its slot with a single copy into the next handler's argument
//! ([`Fifo::pop_in_place`]). The capacity is a power of two, so a position is a mask
//! away from an index and the hot paths have one compare each (full on push, empty on
//! pop).

use std::mem::{ManuallyDrop, MaybeUninit};

/// A growable FIFO ring buffer.
///
/// Invariant: `buf.len()` is a power of two (at least 1); the slots
/// `head, head + 1, ..., head + len - 1` (modulo `buf.len()`) are initialized, in
/// FIFO order, and every other slot is not.
pub(crate) struct Fifo<T> {
    buf: Box<[MaybeUninit<T>]>,
    head: usize,
    len: usize,
}

impl<T> Fifo<T> {
    /// An empty queue with room for at least `cap` items before it grows.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Fifo { buf: Self::alloc(cap.max(1).next_power_of_two()), head: 0, len: 0 }
    }

    fn alloc(cap: usize) -> Box<[MaybeUninit<T>]> {
        Box::new_uninit_slice(cap)
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.buf.len() - 1
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `item`. Inlined, so an item built in the call
    /// (`q.push(Item::Down(i, ev))`) is written straight into its slot: growth, the
    /// only call on the way, cannot unwind (see [`grow`]), so the compiler needs no
    /// other copy of the item.
    #[inline(always)]
    pub(crate) fn push(&mut self, item: T) {
        if self.len == self.buf.len() {
            grow(self);
        }
        let i = (self.head + self.len) & self.mask();
        // SAFETY: `i` is masked by `buf.len() - 1`, so it is in bounds.
        unsafe { self.buf.get_unchecked_mut(i) }.write(item);
        self.len += 1;
    }

    /// Removes the front item.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<T> {
        // SAFETY: the item was just removed from the queue and is taken once, here.
        self.pop_in_place().map(|item| unsafe { ManuallyDrop::take(item) })
    }

    /// Removes the front item, leaving it where it is for the caller to move out of
    /// (whole, or field by field with `ptr::read`) or to forget: the queue no longer
    /// owns it, and the borrow keeps its slot from being reused meanwhile. This spares
    /// the copy that moving the item out whole and then destructuring it costs.
    #[inline(always)]
    pub(crate) fn pop_in_place(&mut self) -> Option<&mut ManuallyDrop<T>> {
        if self.len == 0 {
            return None;
        }
        let i = self.head;
        self.head = (i + 1) & self.mask();
        self.len -= 1;
        // SAFETY: `len` was non-zero, so the slot at `head` is initialized (type
        // invariant); `head` and `len` now exclude it, so the queue will neither read
        // nor drop it again. `ManuallyDrop<T>` and `MaybeUninit<T>` are both
        // `repr(transparent)` over `T`.
        Some(unsafe { &mut *self.buf.get_unchecked_mut(i).as_mut_ptr().cast::<ManuallyDrop<T>>() })
    }

    /// The items from the `from`-th (0 is the front) to the back, in order.
    pub(crate) fn iter_from(&self, from: usize) -> impl Iterator<Item = &T> + '_ {
        (from.min(self.len)..self.len).map(move |k| {
            let i = (self.head + k) & self.mask();
            // SAFETY: `k < len`, so slot `head + k` is initialized (type invariant),
            // and it stays so while `self` is borrowed.
            unsafe { self.buf[i].assume_init_ref() }
        })
    }
}

/// Doubles `q`'s buffer, moving its items to the front of the new one in order.
///
/// `extern "C"`: growth never unwinds (were it to panic, on a size overflow, the
/// process aborts), and the ABI tells the compiler so. The hot path then keeps no
/// cleanup path that would drop the event being pushed, which would otherwise cost one
/// more copy of the event per push.
#[cold]
#[inline(never)]
extern "C" fn grow<T>(q: &mut Fifo<T>) {
    let old = q.buf.len();
    // No overflow: `old` items already fit in memory.
    let mut buf = Fifo::<T>::alloc(old * 2);
    // The items are `head..old` followed by `0..head` (the buffer is full).
    let first = old - q.head;
    // SAFETY: both ranges lie within the old buffer (`head < old`) and within the
    // first `old` slots of the new, distinct buffer. The items are moved bitwise; the
    // old buffer is then freed as `MaybeUninit`, which drops nothing, so each item is
    // owned once, by the new buffer.
    unsafe {
        let src = q.buf.as_ptr();
        let dst = buf.as_mut_ptr();
        std::ptr::copy_nonoverlapping(src.add(q.head), dst, first);
        std::ptr::copy_nonoverlapping(src, dst.add(first), q.head);
    }
    q.buf = buf;
    q.head = 0;
}

impl<T> Drop for Fifo<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::Fifo;
    use std::cell::Cell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// Counts its drops in a shared cell.
    struct Counted(u32, Rc<Cell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
        }
    }

    #[test]
    fn order_is_kept_across_wrap_around_and_growth() {
        let mut q = Fifo::with_capacity(4);
        let mut model = VecDeque::new();
        let mut next = 0u32;
        // Pushes outpace pops (and then the reverse) in uneven runs, so the front
        // passes the end of the buffer repeatedly and the buffer grows while wrapped.
        for round in 0..200usize {
            let (pushes, pops) = if round < 100 { (round % 7, round % 5) } else { (1, 3) };
            for _ in 0..pushes {
                q.push(next);
                model.push_back(next);
                next += 1;
            }
            let from = q.len() / 2;
            assert!(q.iter_from(from).eq(model.range(from..)));
            for _ in 0..pops {
                assert_eq!(q.pop(), model.pop_front());
            }
            assert_eq!(q.len(), model.len());
        }
        assert!(q.buf.len() > 4, "the buffer grew");
        assert!(q.is_empty() && q.pop().is_none());
    }

    #[test]
    fn growth_while_wrapped_keeps_order() {
        let mut q = Fifo::with_capacity(4);
        for i in 0..3 {
            q.push(i);
        }
        assert_eq!((q.pop(), q.pop()), (Some(0), Some(1)));
        for i in 3..7 {
            q.push(i); // wraps at 4, then the push of 6 finds the buffer full
        }
        assert_eq!(q.buf.len(), 8);
        assert_eq!(std::iter::from_fn(|| q.pop()).collect::<Vec<_>>(), [2, 3, 4, 5, 6]);
    }

    #[test]
    fn every_item_is_dropped_exactly_once() {
        let drops = Rc::new(Cell::new(0));
        let mut q = Fifo::with_capacity(2);
        for i in 0..5 {
            q.push(Counted(i, drops.clone()));
        }
        // Popped items are dropped by whoever took them, once.
        for want in 0..2 {
            let c = q.pop().unwrap();
            assert_eq!(c.0, want);
        }
        assert_eq!(drops.get(), 2);
        for i in 5..20 {
            q.push(Counted(i, drops.clone())); // wraps and grows
        }
        assert_eq!(drops.get(), 2, "growth moves items without dropping them");
        assert_eq!(q.pop().map(|c| c.0), Some(2));
        assert_eq!(drops.get(), 3);
        // The 17 still queued are dropped with the queue.
        drop(q);
        assert_eq!(drops.get(), 20);
    }
}
